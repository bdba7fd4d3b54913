"""GX Data Docs for validation runs: :func:`build_data_docs`.

GX's site builder needs a file-backed context with stores; rendering a validation result
needs only GX's page renderer and Jinja view, so we render each run's page directly and
write a small index linking them.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from pathlib import Path

from pipelines.contracts.report import ValidationReport


def build_data_docs(reports: Iterable[ValidationReport], target_dir: str | Path) -> Path:
    """Write one GX validation-results HTML page per report plus ``index.html``.

    Reports whose GX result is absent are listed in the index without a page. Returns
    the path of ``index.html``.
    """
    from great_expectations.render.renderer import ValidationResultsPageRenderer
    from great_expectations.render.view import DefaultJinjaPageView

    target = Path(target_dir)
    (target / "validations").mkdir(parents=True, exist_ok=True)
    renderer = ValidationResultsPageRenderer()
    view = DefaultJinjaPageView()
    items = []
    for rep in reports:
        link = ""
        if rep.gx_result is not None:
            name = f"{rep.dataset}_{rep.logical_date}_{rep.run_id}.html"
            page = view.render(renderer.render(rep.gx_result))
            (target / "validations" / name).write_text(page)
            link = f"validations/{name}"
        title = html.escape(f"{rep.dataset} {rep.logical_date} ({rep.feed}) — {rep.outcome.value}")
        failures = "".join(f"<li>{html.escape(f.message)}</li>" for f in rep.failures)
        head = f'<a href="{link}">{title}</a>' if link else title
        items.append(f"<li>{head}, {rep.rows} rows<ul>{failures}</ul></li>")
    index = target / "index.html"
    index.write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>Data contract runs</title>"
        "</head><body><h1>Data contract runs</h1><ul>" + "".join(items) + "</ul></body></html>"
    )
    return index
