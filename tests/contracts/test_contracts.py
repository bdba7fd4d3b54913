"""Data contracts: one test per fault kind, plus policy, loading and row-origin behaviour."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.config import get_settings
from pipelines.contracts import (
    ContractError,
    Outcome,
    RowOrigin,
    ValidationContext,
    ValidationReport,
    load_contract,
    load_contract_file,
    validate_frame,
)
from pipelines.testing.contract_frames import price_frame, publish_time, security_ids

pytestmark = pytest.mark.unit

DAY = dt.date(2024, 3, 5)
N = 200
FILE = "prices.csv.gz"


@pytest.fixture(scope="module")
def clean() -> pd.DataFrame:
    return price_frame(N, [DAY])


@pytest.fixture(scope="module", autouse=True)
def _warm_gx() -> None:
    # One GX context per process; building it first keeps per-test timings honest.
    from pipelines.contracts.gx_suite import gx_runtime

    gx_runtime()


def ctx(**kw: object) -> ValidationContext:
    base: dict[str, object] = {
        "feed": "sftp",
        "logical_date": DAY,
        "source_files": (FILE,),
        "previous_row_count": N,
        "known_security_ids": set(security_ids(N)),
        "expected_publish_time": publish_time(DAY),
        "row_origin": None,
    }
    base.update(kw)
    return ValidationContext(**base)  # type: ignore[arg-type]


def run(frame: pd.DataFrame, **kw: object) -> ValidationReport:
    return validate_frame("prices", frame, ctx(**kw))


def assert_caught(report: ValidationReport, rule: str, row: int | None = None) -> None:
    assert report.outcome is Outcome.BLOCKED, report.summary()
    failure = report.failure(rule)
    assert failure is not None, f"{rule} not among {report.failed_rules}"
    assert rule in failure.message
    if row is not None:
        assert failure.sample[0].index == row
        assert f"row {row}" in failure.message
        assert FILE in failure.message
        assert row in report.failed_row_indices()


def test_clean_batch_passes(clean: pd.DataFrame) -> None:
    report = run(clean)
    assert report.success and report.outcome is Outcome.PASSED, report.summary()
    assert report.failures == [] and len(report.failed_row_indices()) == 0
    rows = report.to_rows()
    assert len(rows) == len(report.results)
    assert {"run_id", "dataset", "feed", "valid_date", "file_name", "rule", "success"} <= set(
        rows[0]
    )
    assert {"sample", "unexpected_count", "known_at"} <= set(rows[0])


def test_missing_column_renamed(clean: pd.DataFrame) -> None:
    report = run(clean.rename(columns={"close": "close_px"}))
    assert_caught(report, "schema.close.present")
    assert "close_px" in report.failure("schema.close.present").message  # type: ignore[union-attr]
    skipped = {r.rule for r in report.results if r.status == "skipped"}
    assert {"close_positive", "high_ge_close"} <= skipped


def test_retyped_column_text_prices(clean: pd.DataFrame) -> None:
    bad = clean.copy()
    bad["close"] = [f"{v:.4f}USD" for v in bad["close"]]
    report = run(bad)
    assert_caught(report, "schema.close.type", row=0)
    failure = report.failure("schema.close.type")
    assert failure is not None and failure.unexpected_count == N
    assert str(failure.sample[0].values["close"]).endswith("USD")


def test_duplicated_rows(clean: pd.DataFrame) -> None:
    bad = pd.concat([clean, clean.iloc[[7]]], ignore_index=True)
    report = run(bad, previous_row_count=N)
    assert_caught(report, "key.unique", row=7)
    assert set(report.failed_row_indices()) == {7, N}


def test_negative_price(clean: pd.DataFrame) -> None:
    bad = clean.copy()
    bad.loc[11, "close"] = -3.5
    report = run(bad)
    assert_caught(report, "close_positive", row=11)
    assert report.failure("close_positive").sample[0].values["close"] == -3.5  # type: ignore[union-attr]


def test_high_below_low(clean: pd.DataFrame) -> None:
    bad = clean.copy()
    bad.loc[13, "high"] = bad.loc[13, "low"] - 1
    report = run(bad)
    assert_caught(report, "high_ge_low", row=13)


def test_negative_volume(clean: pd.DataFrame) -> None:
    bad = clean.copy()
    bad.loc[17, "volume"] = -100.0
    assert_caught(run(bad), "volume_non_negative", row=17)


def test_unknown_security_id(clean: pd.DataFrame) -> None:
    known = set(security_ids(N)) - {"S000019"}
    assert_caught(run(clean, known_security_ids=known), "security_known", row=19)


def test_referential_rule_skipped_without_ids(clean: pd.DataFrame) -> None:
    report = run(clean, known_security_ids=None)
    result = next(r for r in report.results if r.rule == "security_known")
    assert result.status == "skipped" and report.outcome is Outcome.PASSED


def test_stale_data(clean: pd.DataFrame) -> None:
    report = run(clean, logical_date=DAY + dt.timedelta(days=20))
    assert_caught(report, "trade_date_recent", row=0)
    late = run(clean, expected_publish_time=publish_time(DAY) + dt.timedelta(hours=6))
    assert late.failure("published_on_time") is not None


def test_row_count_collapse(clean: pd.DataFrame) -> None:
    report = run(clean.iloc[:50], previous_row_count=N)
    assert_caught(report, "row_count_stable")
    assert report.failure("row_count_stable").observed_value == 50  # type: ignore[union-attr]
    assert report.batch_level_failures()


def test_bad_category(clean: pd.DataFrame) -> None:
    bad = clean.copy()
    bad.loc[23, "currency"] = "EUR"
    assert_caught(run(bad), "currency_allowed", row=23)


def test_bad_sector_category() -> None:
    frame = pd.DataFrame(
        {
            "security_id": ["S000001", "S000002"],
            "ticker": ["AAA", "BBB"],
            "name": ["A Inc", "B Inc"],
            "sector": ["Energy", "Crypto"],
            "exchange": ["XNYS", "XNAS"],
            "currency": ["USD", "USD"],
            "listed": [True, True],
            "list_date": [dt.date(2020, 1, 2)] * 2,
            "delist_date": [None, None],
            "delist_reason": [None, None],
            "valid_date": [DAY, DAY],
            "known_at": [pd.Timestamp(publish_time(DAY))] * 2,
        }
    )
    report = validate_frame(
        "security_master", frame, ValidationContext(feed="sftp", logical_date=DAY)
    )
    failure = report.failure("sector_allowed")
    assert failure is not None and failure.sample[0].index == 1, report.summary()
    assert report.failed_rules == ["sector_allowed"]


def test_warn_policy_warns_not_blocks(clean: pd.DataFrame) -> None:
    report = run(clean, expected_publish_time=publish_time(DAY) + dt.timedelta(hours=5))
    assert report.failed_rules == ["published_on_time"]
    assert report.outcome is Outcome.WARNED and not report.success and not report.blocked
    extra = run(clean.assign(new_vendor_col=1))
    assert extra.outcome is Outcome.WARNED and extra.failed_rules == ["schema.unexpected_columns"]


def test_multi_day_row_origin_names_file_and_line() -> None:
    days = [DAY, DAY + dt.timedelta(days=1), DAY + dt.timedelta(days=2)]
    frames = []
    for d in days:
        f = price_frame(N, [d])
        f["_file"] = f"daily/{d}/prices.csv.gz"
        f["_line"] = np.arange(len(f)) + 2
        frames.append(f)
    frame = pd.concat(frames, ignore_index=True)
    bad_row = N + 41  # second day, 42nd data row → line 43
    frame.loc[bad_row, "low"] = -1.0
    report = validate_frame(
        "prices",
        frame,
        ValidationContext(
            feed="sftp",
            logical_date=days[-1],
            source_files=tuple(sorted(set(frame["_file"]))),
            known_security_ids=set(security_ids(N)),
            row_origin=RowOrigin(file_column="_file", line_column="_line"),
            # Each row's own delivery day, as a backfill chunk gives it.
            row_logical_dates=frame["valid_date"].to_numpy(dtype="datetime64[D]"),
        ),
    )
    failure = report.failure("low_positive")
    assert failure is not None, report.summary()
    row = failure.sample[0]
    assert (row.index, row.file, row.line) == (bad_row, f"daily/{days[1]}/prices.csv.gz", 43)
    assert f"daily/{days[1]}/prices.csv.gz line 43" in failure.message
    assert "schema.unexpected_columns" not in report.failed_rules  # origin columns are not data
    bad = report.failed_row_indices()
    assert set(frame.loc[bad, "valid_date"].dt.date) == {days[1]}
    table_rows = [r for r in report.to_rows() if r["rule"] == "low_positive"]
    assert table_rows[0]["file_name"] == f"daily/{days[1]}/prices.csv.gz"


def test_every_contract_loads() -> None:
    for name in ["prices", "corporate_actions", "security_master", "fundamentals", "sentiment"]:
        assert load_contract(name).dataset == name


def test_malformed_contract_gives_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text(
        "dataset: prices\n"
        "columns:\n  close: {type: flaot}\n"
        "rules:\n  - {name: close_positive, kind: range, column: clse, min: 0}\n"
    )
    with pytest.raises(ContractError) as err:
        load_contract_file(path)
    text = str(err.value)
    assert "prices.yaml" in text and "columns.close.type" in text and "'float'" in text
    path.write_text(
        "dataset: prices\ncolumns:\n  close: {type: float}\n"
        "rules:\n  - {name: close_positive, kind: range, column: clse, min: 0}\n"
    )
    with pytest.raises(ContractError, match=r"close_positive.*clse.*not declared"):
        load_contract_file(path)
    path.write_text("dataset: prices\ncolumns: [oops\n")
    with pytest.raises(ContractError, match="not valid YAML"):
        load_contract_file(path)


def test_data_docs_html(clean: pd.DataFrame, tmp_path: Path) -> None:
    from pipelines.contracts.data_docs import build_data_docs

    bad = clean.copy()
    bad.loc[3, "close"] = -1.0
    index = Path(build_data_docs([run(clean), run(bad)], tmp_path / "docs"))
    pages = list((tmp_path / "docs" / "validations").glob("*.html"))
    assert index.exists() and len(pages) == 2
    assert "close_positive" in index.read_text()


def test_suite_tags_every_expectation_with_its_rule() -> None:
    from pipelines.contracts.gx_suite import build_suite

    contract = load_contract("prices")
    suite = build_suite(contract)
    rules = [e.meta["rule"] for e in suite.expectations]
    assert len(rules) == len(set(rules)) and "high_ge_low" in rules and "key.unique" in rules


def test_report_rows_write_to_the_lake(clean: pd.DataFrame, lake) -> None:  # type: ignore[no-untyped-def]
    import pyarrow as pa

    from pipelines.lake.catalog import get_table

    bad = clean.copy()
    bad.loc[3, "close"] = -1.0
    rows = run(bad, run_id="run-1").to_rows()
    assert set(rows[0]) == {f.name for f in get_table("validation_results").input_fields}
    assert lake.write("validation_results", pa.Table.from_pylist(rows)).written
    failed = next(r for r in rows if r["rule"] == "close_positive")
    assert failed["success"] is False and '"index": 3' in failed["sample"]


def test_contract_schemas_match_lake_tables() -> None:
    import pyarrow as pa

    from pipelines.lake.catalog import get_table

    logical = {
        pa.string(): "string",
        pa.float64(): "float",
        pa.int64(): "int",
        pa.bool_(): "bool",
        pa.date32(): "date",
        pa.timestamp("us", tz="UTC"): "timestamp",
    }
    for name in ["prices", "corporate_actions", "security_master", "fundamentals", "sentiment"]:
        contract = load_contract(name)
        fields = {f.name: f for f in get_table(name).input_fields}
        assert list(contract.columns) == list(fields), name
        for col, spec in contract.columns.items():
            assert spec.type.value == logical[fields[col].type], (name, col)
            if not fields[col].nullable:
                assert not spec.nullable, (name, col)


def test_arrow_table_and_odd_index_are_accepted(clean: pd.DataFrame) -> None:
    import pyarrow as pa

    bad = clean.copy()
    bad.loc[5, "close"] = -1.0
    shifted = bad.set_index(bad.index + 1000)
    assert run(shifted).failure("close_positive").sample[0].index == 5  # type: ignore[union-attr]
    table = pa.Table.from_pandas(bad, preserve_index=False)
    assert run(table).failure("close_positive").sample[0].index == 5  # type: ignore[arg-type, union-attr]


def test_header_only_file_passes_schema() -> None:
    contract = load_contract("security_master")
    empty = pd.DataFrame({c: pd.Series([], dtype=object) for c in contract.columns})
    report = validate_frame(contract, empty, ValidationContext(feed="sftp", logical_date=DAY))
    assert report.outcome is Outcome.PASSED, report.summary()


def test_a_many_file_batch_names_a_few_files_then_how_many_more(clean: pd.DataFrame) -> None:
    from pipelines.contracts.report import name_files

    files = tuple(f"2024-01-{d:02d}/prices.csv.gz" for d in range(1, 31))
    assert name_files(files) == ";".join(files[:3]) + " and 27 more"
    assert name_files(files[:3]) == ";".join(files[:3])
    bad = clean.copy()
    bad = bad.drop(columns=["close"])  # a batch-level failure names the batch's files
    report = run(bad, source_files=files)
    message = " ".join(f.message for f in report.failures)
    assert "and 27 more" in message and files[10] not in message


def test_every_contract_gate_run_writes_its_data_docs_page(clean: pd.DataFrame) -> None:
    """The ingest gate's contract run renders the GX page under the lake's reports and
    lists it, newest first, in the index (issue 18: no run produced Data Docs)."""
    import pyarrow as pa

    from pipelines.contracts.data_docs import INDEX, data_docs_root
    from pipelines.ingest.feed_spec import load_feeds
    from pipelines.ingest.gate import GateContext, contract_gate
    from pipelines.ingest.parse import ParsedBatch

    feed = load_feeds()["vendor_prices"]
    frame = clean.copy()
    frame["known_at"] = publish_time(DAY)
    ctx = GateContext(feed.name, DAY, (FILE,), published_at=publish_time(DAY))
    result = contract_gate(feed, ParsedBatch(feed.name, FILE, pa.Table.from_pandas(frame)), ctx)
    assert result.data_docs is not None
    page = Path(result.data_docs)
    assert page.is_file() and page.parent.parent == data_docs_root()
    assert data_docs_root().is_relative_to(Path(get_settings().lake_root).resolve())
    html = page.read_text()
    assert "Great Expectations" in html and html.count("values must") >= 5  # the rules
    index = (data_docs_root() / INDEX).read_text()
    assert page.name in index and "vendor_prices" in index


def test_the_gate_writes_data_docs_under_the_lake_it_validates_for(
    clean: pd.DataFrame, tmp_path: Path
) -> None:
    """A batch bound for another lake than the configured one (a benchmark's temp lake, a
    test's) gets its Data Docs page under that lake's reports, not the configured lake's
    (bug: the page followed the settings whatever lake was written)."""
    import pyarrow as pa

    from pipelines.contracts.data_docs import INDEX, data_docs_root
    from pipelines.ingest.feed_spec import load_feeds
    from pipelines.ingest.gate import GateContext, contract_gate
    from pipelines.ingest.parse import ParsedBatch

    feed = load_feeds()["vendor_prices"]
    frame = clean.copy()
    frame["known_at"] = publish_time(DAY)
    before = set(data_docs_root().rglob("*.html")) if data_docs_root().exists() else set()
    ctx = GateContext(
        feed.name, DAY, (FILE,), published_at=publish_time(DAY), lake_root=str(tmp_path)
    )
    result = contract_gate(feed, ParsedBatch(feed.name, FILE, pa.Table.from_pandas(frame)), ctx)
    assert result.data_docs is not None
    page = Path(result.data_docs)
    assert page.is_file() and page.is_relative_to(tmp_path / "reports" / "data_docs")
    assert (tmp_path / "reports" / "data_docs" / INDEX).is_file()
    after = set(data_docs_root().rglob("*.html")) if data_docs_root().exists() else set()
    assert after == before  # nothing written under the configured lake
