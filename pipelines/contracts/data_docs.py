"""GX Data Docs for validation runs: :func:`write_validation_page`, :func:`build_data_docs`.

GX's site builder needs a file-backed context with stores; rendering a validation result
needs only GX's page renderer and Jinja view, so we render each run's page directly and
keep a small index linking them. Every contract run of the ingest gate writes its page
(:func:`data_docs_root`: ``<lake root>/reports/data_docs``); the index lists the newest
first.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable
from pathlib import Path

from pipelines.contracts.report import ValidationReport, name_files

INDEX = "index.html"
PAGES = "validations"
#: Runs the index lists (the pages themselves stay until the lake's retention removes them).
INDEX_LIMIT = 500


def data_docs_root() -> Path:
    """Where the gate writes Data Docs: ``<lake root>/reports/data_docs`` for a local lake,
    ``./var/reports/data_docs`` when the lake is on S3 (pages are for a browser here)."""
    from pipelines.config import get_settings

    s = get_settings()
    base = Path("var").resolve() if s.is_s3 else s.local_root()
    return base / "reports" / "data_docs"


def _page_name(rep: ValidationReport) -> str:
    stem = f"{rep.dataset}_{rep.logical_date}_{rep.run_id}"
    return re.sub(r"[^A-Za-z0-9_.-]", "_", stem)[:180] + ".html"


def write_validation_page(rep: ValidationReport, target_dir: str | Path) -> Path:
    """Render ``rep``'s GX validation result to ``validations/<name>.html`` under
    ``target_dir``, record its summary beside it and rebuild ``index.html``.

    Returns the page (or the index when GX did not run, so there is no page)."""
    target = Path(target_dir)
    pages = target / PAGES
    pages.mkdir(parents=True, exist_ok=True)
    name = _page_name(rep)
    link = ""
    if rep.gx_result is not None:
        from great_expectations.render.renderer import ValidationResultsPageRenderer
        from great_expectations.render.view import DefaultJinjaPageView

        page = DefaultJinjaPageView().render(ValidationResultsPageRenderer().render(rep.gx_result))
        (pages / name).write_text(page)
        link = f"{PAGES}/{name}"
    summary = {
        "title": f"{rep.dataset} {rep.logical_date} ({rep.feed}): {rep.outcome.value}",
        "files": name_files(rep.source_files),
        "rows": rep.rows,
        "validated_at": rep.validated_at.isoformat(),
        "failures": [f.message for f in rep.failures],
        "link": link,
    }
    (pages / f"{name}.json").write_text(json.dumps(summary))
    index = write_index(target)
    return target / link if link else index


def write_index(target_dir: str | Path) -> Path:
    """(Re)write ``index.html`` listing the recorded runs, newest first."""
    target = Path(target_dir)
    summaries = []
    for p in (target / PAGES).glob("*.json"):
        try:
            summaries.append(json.loads(p.read_text()))
        except (OSError, ValueError):
            continue  # a page being written by a concurrent task: listed next time
    summaries.sort(key=lambda s: str(s.get("validated_at", "")), reverse=True)
    items = []
    for s in summaries[:INDEX_LIMIT]:
        title = html.escape(f"{s['validated_at'][:19]} {s['title']}, {s['rows']} rows")
        head = f'<a href="{html.escape(s["link"])}">{title}</a>' if s.get("link") else title
        failures = "".join(f"<li>{html.escape(m)}</li>" for m in s.get("failures", []))
        files = html.escape(str(s.get("files", "")))
        items.append(f"<li>{head}<br><small>{files}</small><ul>{failures}</ul></li>")
    index = target / INDEX
    index.write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>Data contract runs</title>"
        "</head><body><h1>Data contract runs</h1><ul>" + "".join(items) + "</ul></body></html>"
    )
    return index


def build_data_docs(reports: Iterable[ValidationReport], target_dir: str | Path) -> Path:
    """Write one GX validation-results HTML page per report plus ``index.html``.

    Reports whose GX result is absent are listed in the index without a page. Returns
    the path of ``index.html``.
    """
    for rep in reports:
        write_validation_page(rep, target_dir)
    return write_index(target_dir)
