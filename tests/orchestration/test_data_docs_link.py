"""The "Data Docs" extra link of vendor_ingest's tasks and the reports the API server
serves (issue 18: Data Docs linked from the Airflow task)."""

from __future__ import annotations

import datetime as dt
import importlib
from pathlib import Path
from typing import Any

import pytest

from pipelines.contracts.data_docs import (
    INDEX,
    PAGES,
    REPORTS_URL_ENV,
    data_docs_location,
    data_docs_url,
    read_report,
)
from pipelines.ingest.flow import FileOutcome
from pipelines.orchestration.assets import ingest_event_extra
from pipelines.orchestration.links import (
    DATA_DOCS_LINK_NAME,
    DATA_DOCS_XCOM,
    DataDocsLink,
    DataDocsPythonOperator,
)
from pipelines.orchestration.reports_app import URL_PREFIX, reports_path

pytestmark = pytest.mark.unit


def _page(name: str = "prices_2024-07-03_r1.html") -> str:
    page = Path(data_docs_location()) / PAGES / name
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text("<html>GX page</html>")
    return str(page)


def test_url_is_the_page_of_one_run_else_the_index(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(REPORTS_URL_ENV, raising=False)
    page = _page()
    assert data_docs_url([page]) == Path(page).as_uri()
    index = data_docs_url([page, _page("other.html")])
    assert index == (Path(data_docs_location()) / INDEX).as_uri()
    assert data_docs_url() == index
    # published over HTTP: the path below the reports directory, percent-encoded
    base = "https://reports.example/af/"
    assert data_docs_url([page], base) == (
        "https://reports.example/af/data_docs/validations/prices_2024-07-03_r1.html"
    )
    monkeypatch.setenv(REPORTS_URL_ENV, "https://r.example")
    assert data_docs_url() == "https://r.example/data_docs/index.html"


def test_asset_extra_carries_the_browser_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REPORTS_URL_ENV, "https://r.example")
    page = _page()
    out = FileOutcome(
        "vendor_prices", dt.date(2024, 7, 3), "p.csv", "ab" * 32, "loaded", rows=3, data_docs=page
    )
    extra = ingest_event_extra("vendor_prices", "2024-07-03", [out], [])
    assert extra["data_docs"] == [page]
    assert extra["data_docs_url"] == (
        "https://r.example/data_docs/validations/prices_2024-07-03_r1.html"
    )
    assert ingest_event_extra("vendor_prices", "2024-07-03", [], [])["data_docs_url"] is None


class _RunningTI:
    """What the worker hands ``get_link`` at the end of a task: the running instance."""

    task_id, map_index = "ingest_vendor_prices", -1

    def __init__(self, pages: list[str] | None) -> None:
        self.pages = pages
        self.pulled: dict[str, Any] = {}

    def xcom_pull(self, **kw: Any) -> list[str] | None:
        self.pulled = kw
        return self.pages


def _worker_link(ti: _RunningTI) -> str:
    return DataDocsLink().get_link(None, ti_key=ti)  # type: ignore[arg-type]


def test_link_is_computed_in_the_worker_from_the_pages_the_task_pushed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(REPORTS_URL_ENV, raising=False)
    page = _page()
    ti = _RunningTI([page])
    link = _worker_link(ti)
    assert ti.pulled == {"task_ids": ti.task_id, "key": DATA_DOCS_XCOM, "map_indexes": -1}
    # a same-origin path on the API server: the UI renders no file:// link
    assert reports_path().endswith(f"{URL_PREFIX}/reports")
    assert link == f"{reports_path()}/data_docs/validations/prices_2024-07-03_r1.html"
    # a failed task that validated nothing still links the index
    assert _worker_link(_RunningTI(None)).endswith("/data_docs/index.html")
    monkeypatch.setenv(REPORTS_URL_ENV, "https://r.example")
    assert _worker_link(ti) == "https://r.example/data_docs/validations/prices_2024-07-03_r1.html"


def test_every_vendor_ingest_load_carries_the_link_and_the_plugin_registers_it() -> None:
    from airflow.serialization.serialized_objects import DagSerialization

    from pipelines.orchestration.plugin import AlphaFactoryPlugin

    dag = importlib.import_module("dags.vendor_ingest").dag
    tasks = {
        t["__var"]["task_id"]: t["__var"] for t in DagSerialization.to_dict(dag)["dag"]["tasks"]
    }
    loads = {k: v for k, v in tasks.items() if k.startswith("ingest_")}
    assert loads
    for task in loads.values():
        assert task["_operator_extra_links"] == {DATA_DOCS_LINK_NAME: DataDocsLink().xcom_key}
        assert task["task_type"] == DataDocsPythonOperator.__name__
    assert not any("_operator_extra_links" in v for k, v in tasks.items() if k.startswith("wait_"))
    (link,) = AlphaFactoryPlugin.operator_extra_links
    assert isinstance(link, DataDocsLink) and DataDocsPythonOperator in link.operators
    (app,) = AlphaFactoryPlugin.fastapi_apps
    assert app["url_prefix"] == URL_PREFIX


def test_reports_are_read_below_the_reports_directory_only() -> None:
    page = _page()
    assert read_report("data_docs/validations/prices_2024-07-03_r1.html") == b"<html>GX page</html>"
    assert read_report(f"data_docs/{PAGES}") is None  # a directory
    assert read_report("data_docs/missing.html") is None
    secret = Path(page).parents[3] / "secret.txt"  # beside the reports directory
    secret.write_text("no")
    assert read_report("../secret.txt") is None
    assert read_report("data_docs/../../secret.txt") is None


def test_reports_app_refuses_a_caller_not_signed_in() -> None:
    from fastapi.testclient import TestClient

    from pipelines.orchestration.reports_app import reports_app

    _page()
    client = TestClient(reports_app())
    resp = client.get("/reports/data_docs/validations/prices_2024-07-03_r1.html")
    assert resp.status_code == 401


def test_reports_app_serves_a_signed_in_user_a_sandboxed_page() -> None:
    from fastapi.testclient import TestClient

    from pipelines.orchestration.reports_app import reports_app

    _page()
    app = reports_app()
    app.dependency_overrides[app.state.signed_in] = lambda: None
    try:
        client = TestClient(app)
        resp = client.get("/reports/data_docs/validations/prices_2024-07-03_r1.html")
        assert resp.status_code == 200 and resp.text == "<html>GX page</html>"
        assert resp.headers["content-type"].startswith("text/html")
        # vendor data on Airflow's origin: no access to the user's session
        assert resp.headers["content-security-policy"].startswith("sandbox ")
        assert "allow-same-origin" not in resp.headers["content-security-policy"]
        assert client.get("/reports/data_docs/nothing.html").status_code == 404
        assert client.get("/reports/../secret.txt").status_code == 404
    finally:
        app.dependency_overrides.clear()
