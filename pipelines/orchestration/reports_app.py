"""The lake's reports directory served by Airflow's API server, for signed-in users.

Airflow 3's UI renders an extra link only when it is http(s) or on its own origin, so a
``file://`` Data Docs page would not show at all, and an ``s3://`` one cannot be opened.
The plugin (:mod:`pipelines.orchestration.plugin`) mounts this app at :data:`URL_PREFIX`:
``GET /alphafactory/reports/<path>`` returns ``<lake root>/reports/<path>`` (local or
S3, read with the lake's credentials) to a user the auth manager signed in (the UI's
session cookie or a bearer token), 401 otherwise. The Data Docs link points here unless
``ALPHAFACTORY_REPORTS_URL`` names another server.
"""

from __future__ import annotations

import functools
import mimetypes
from typing import Any

#: Where the plugin mounts the app on the API server (outside Airflow's reserved prefixes).
URL_PREFIX = "/alphafactory"
#: The reports directory's route below :data:`URL_PREFIX`.
REPORTS_ROUTE = "/reports"
#: A report holds vendor data and loads scripts (GX pages: Bootstrap, jQuery); served on
#: Airflow's origin, it is sandboxed into an origin of its own so that nothing in it can
#: reach the user's Airflow session (its cookie, the API as that user).
SANDBOX_HEADERS = {
    "Content-Security-Policy": "sandbox allow-scripts allow-popups allow-popups-to-escape-sandbox",
    "X-Content-Type-Options": "nosniff",
}


def reports_path() -> str:
    """The reports directory's path on the API server: Airflow's ``[api] base_url`` path
    (empty at the root) + ``/alphafactory/reports``. A path, not a URL: the UI shows a
    same-origin link whatever host name the browser used."""
    from urllib.parse import urlparse

    from airflow.configuration import conf

    base = urlparse(conf.get("api", "base_url", fallback="") or "").path.rstrip("/")
    return f"{base}{URL_PREFIX}{REPORTS_ROUTE}"


class _LazyApps:
    """``AirflowPlugin.fastapi_apps`` built on first read."""

    def __get__(self, obj: object, owner: type | None = None) -> list[dict[str, Any]]:
        return [{"app": reports_app(), "url_prefix": URL_PREFIX, "name": "Alpha Factory reports"}]


def fastapi_apps() -> Any:
    """The plugin's ``fastapi_apps``: the reports app, built when the API server reads it."""
    return _LazyApps()


@functools.cache
def reports_app() -> Any:
    """The FastAPI app serving the reports directory (see the module docstring)."""
    from airflow.api_fastapi.core_api.security import requires_authenticated
    from fastapi import Depends, FastAPI, HTTPException, Response

    from pipelines.contracts.data_docs import read_report

    app = FastAPI(title="Alpha Factory reports", docs_url=None, redoc_url=None)
    signed_in = requires_authenticated()
    app.state.signed_in = signed_in  # the dependency, for tests to override

    @app.get(f"{REPORTS_ROUTE}/{{path:path}}", dependencies=[Depends(signed_in)])
    def report(path: str) -> Response:
        data = read_report(path)
        if data is None:
            raise HTTPException(status_code=404, detail=f"no report {path!r}")
        media = mimetypes.guess_type(path)[0] or "application/octet-stream"
        return Response(content=data, media_type=media, headers=SANDBOX_HEADERS)

    return app
