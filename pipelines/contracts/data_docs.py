"""GX Data Docs for validation runs: :func:`write_validation_page`, :func:`build_data_docs`.

GX's site builder needs a file-backed context with stores; rendering a validation result
needs only GX's page renderer and Jinja view, so we render each run's page directly and
keep a small index linking them. Every contract run of the ingest gate writes its page
under the lake's reports directory (:func:`data_docs_location`:
``<lake root>/reports/data_docs``, on S3 too); the index lists the newest first.
:func:`data_docs_url` is the address a browser opens (Airflow's "Data Docs" extra link,
the asset events, ``status``): under ``$ALPHAFACTORY_REPORTS_URL`` when the reports
directory is published over HTTP(S), else ``file://`` (an ``s3://`` URI for an S3 lake,
which a browser cannot open: publish the prefix and set the variable).
"""

from __future__ import annotations

import html
import json
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from pipelines.config import REPORTS_URL_ENV
from pipelines.contracts.report import ValidationReport, name_files

if TYPE_CHECKING:
    import pyarrow.fs as pafs

INDEX = "index.html"
PAGES = "validations"
#: Runs the index lists (the pages themselves stay until the lake's retention removes them).
INDEX_LIMIT = 500


def data_docs_root() -> Path:
    """The local directory of Data Docs: ``<lake root>/reports/data_docs`` for a local lake,
    ``./var/reports/data_docs`` when the lake is on S3 (local state beside it, such as the
    late-feeds file, stays on this machine; the pages go to :func:`data_docs_location`)."""
    from pipelines.config import get_settings

    s = get_settings()
    base = Path("var").resolve() if s.is_s3 else s.local_root()
    return base / "reports" / "data_docs"


def data_docs_location(lake_root: str | None = None) -> str:
    """Where the gate writes Data Docs: ``<lake root>/reports/data_docs``, a local path or
    an ``s3://`` URI (the lake's own reports prefix), for the lake at ``lake_root`` (default:
    the configured lake)."""
    from pipelines.config import get_settings

    if lake_root is not None:
        return f"{lake_root.rstrip('/')}/reports/data_docs"
    s = get_settings()
    if s.is_s3:
        return f"{s.lake_root.rstrip('/')}/reports/data_docs"
    return str(data_docs_root())


def data_docs_url(pages: Sequence[str] = (), base_url: str | None = None) -> str:
    """A browser's address for the Data Docs of one task: its validation page when it
    wrote exactly one, else the index (which lists every run, newest first).

    With ``base_url`` (default ``$ALPHAFACTORY_REPORTS_URL``) set: that URL plus the path
    below the reports directory (``data_docs/...``). Else a ``file://`` URL of a local
    file, or the ``s3://`` URI of a page on S3 (to copy; not browsable)."""
    root = data_docs_location()
    target = str(pages[0]) if len(pages) == 1 else f"{root}/{INDEX}"
    base = base_url if base_url is not None else os.environ.get(REPORTS_URL_ENV, "")
    if base:
        return f"{base.rstrip('/')}/{quote(_below_reports(target, root))}"
    if "://" in target:
        return target
    return Path(target).resolve().as_uri()


def read_report(relative: str) -> bytes | None:
    """The bytes of ``relative`` (``data_docs/index.html``, ...) below the lake's reports
    directory, local or on S3; None when absent or when the path would leave it."""
    parts = [p for p in relative.split("/") if p not in ("", ".")]
    if not parts or any(p == ".." or "\\" in p for p in parts):
        return None
    reports = data_docs_location().rstrip("/").rsplit("/", 1)[0]
    fs, base = _fs(reports)
    try:
        with fs.open_input_stream("/".join([base, *parts])) as stream:
            data: bytes = stream.read()
    except (OSError, ValueError):  # absent, a directory, unreadable
        return None
    return data


def index_written() -> bool:
    """Whether the gate has written the Data Docs index (locally or on the lake's S3)."""
    import pyarrow.fs as pafs

    fs, base = _fs(data_docs_location())
    return bool(fs.get_file_info(f"{base}/{INDEX}").type == pafs.FileType.File)


def _below_reports(target: str, root: str) -> str:
    """``target``'s path below the reports directory (the parent of ``root``)."""
    reports = root.rstrip("/").rsplit("/", 1)[0]
    if "://" not in target:
        target, reports = str(Path(target).resolve()), str(Path(reports).resolve())
    if target.startswith(reports.rstrip("/") + "/"):
        return target[len(reports.rstrip("/")) + 1 :]
    # a page written under another root: where it sits below data_docs is all we know
    name = target.rstrip("/").rsplit("/", 1)[-1]
    sub = f"{PAGES}/{name}" if name != INDEX else INDEX
    return f"data_docs/{sub}"


def _fs(target_dir: str | Path) -> tuple[pafs.FileSystem, str]:
    """The filesystem of ``target_dir`` (local or the lake's S3) and its path on it."""
    from pipelines.lake.files import filesystem_for

    target = str(target_dir)
    opts = None
    if target.startswith("s3://"):
        from pipelines.config import get_settings

        opts = get_settings().storage_options()
    return filesystem_for(target.rstrip("/"), opts)


def _write(fs: pafs.FileSystem, path: str, text: str) -> None:
    with fs.open_output_stream(path) as stream:
        stream.write(text.encode("utf-8"))


def _join(target_dir: str | Path, *parts: str) -> str:
    return "/".join([str(target_dir).rstrip("/"), *parts])


def _page_name(rep: ValidationReport) -> str:
    stem = f"{rep.dataset}_{rep.logical_date}_{rep.run_id}"
    return re.sub(r"[^A-Za-z0-9_.-]", "_", stem)[:180] + ".html"


def write_validation_page(rep: ValidationReport, target_dir: str | Path) -> str:
    """Render ``rep``'s GX validation result to ``validations/<name>.html`` under
    ``target_dir`` (a local directory or an ``s3://`` prefix), record its summary beside
    it and rebuild ``index.html``.

    Returns where the page is (or the index when GX did not run, so there is no page)."""
    fs, base = _fs(target_dir)
    fs.create_dir(f"{base}/{PAGES}", recursive=True)
    name = _page_name(rep)
    link = ""
    if rep.gx_result is not None:
        from great_expectations.render.renderer import ValidationResultsPageRenderer
        from great_expectations.render.view import DefaultJinjaPageView

        page = DefaultJinjaPageView().render(ValidationResultsPageRenderer().render(rep.gx_result))
        _write(fs, f"{base}/{PAGES}/{name}", page)
        link = f"{PAGES}/{name}"
    summary = {
        "title": f"{rep.dataset} {rep.logical_date} ({rep.feed}): {rep.outcome.value}",
        "files": name_files(rep.source_files),
        "rows": rep.rows,
        "validated_at": rep.validated_at.isoformat(),
        "failures": [f.message for f in rep.failures],
        "link": link,
    }
    _write(fs, f"{base}/{PAGES}/{name}.json", json.dumps(summary))
    index = write_index(target_dir)
    return _join(target_dir, link) if link else index


def write_index(target_dir: str | Path) -> str:
    """(Re)write ``index.html`` listing the recorded runs, newest first; return where."""
    import pyarrow.fs as pafs

    fs, base = _fs(target_dir)
    infos = [
        i
        for i in fs.get_file_info(pafs.FileSelector(f"{base}/{PAGES}", allow_not_found=True))
        if i.is_file and i.path.endswith(".json")
    ]
    # Only the newest summaries are read: on S3 each is a request.
    infos.sort(key=lambda i: i.mtime_ns or 0, reverse=True)
    summaries = []
    for info in infos[:INDEX_LIMIT]:
        try:
            with fs.open_input_stream(info.path) as stream:
                summaries.append(json.loads(stream.read()))
        except (OSError, ValueError):
            continue  # a page being written by a concurrent task: listed next time
    summaries.sort(key=lambda s: str(s.get("validated_at", "")), reverse=True)
    items = []
    for s in summaries:
        title = html.escape(f"{s['validated_at'][:19]} {s['title']}, {s['rows']} rows")
        head = f'<a href="{html.escape(s["link"])}">{title}</a>' if s.get("link") else title
        failures = "".join(f"<li>{html.escape(m)}</li>" for m in s.get("failures", []))
        files = html.escape(str(s.get("files", "")))
        items.append(f"<li>{head}<br><small>{files}</small><ul>{failures}</ul></li>")
    _write(
        fs,
        f"{base}/{INDEX}",
        "<!doctype html><html><head><meta charset='utf-8'><title>Data contract runs</title>"
        "</head><body><h1>Data contract runs</h1><ul>" + "".join(items) + "</ul></body></html>",
    )
    return _join(target_dir, INDEX)


def build_data_docs(reports: Iterable[ValidationReport], target_dir: str | Path) -> str:
    """Write one GX validation-results HTML page per report plus ``index.html``.

    Reports whose GX result is absent are listed in the index without a page. Returns
    where ``index.html`` is.
    """
    for rep in reports:
        write_validation_page(rep, target_dir)
    return write_index(target_dir)
