"""REST API (aiohttp) for fundamentals, sentiment and security master.

Contract (all under ``/v1``; see FORMATS.md):

* ``Authorization: Bearer <token>`` on every data endpoint, else **401**.
* More than ``rate_limit`` requests per ``rate_window_seconds`` per token → **429** with an
  integer ``Retry-After`` (seconds).
* With ``error_rate > 0``, the n-th authenticated, admitted request fails with **503** iff
  ``splitmix64(seed, n) < error_rate`` — deterministic given the request order.
* ``GET /v1/{dataset}?since=ISO&page_size=N&page_token=T``: records with
  ``since < published_at <= vendor clock``, ordered by ``published_at``; ``next_page_token``
  continues the same snapshot; the last page carries ``cursor`` (pass it as ``since`` next
  time).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import math
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from pipelines.vendors.clock import Clock
from pipelines.vendors.feeds import PublishedDataset
from pipelines.vendors.instants import instant_ns, parse_instant, to_utc_iso
from pipelines.vendors.simulator import VendorSimulator

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
DATASETS = ("fundamentals", "sentiment", "security-master")

_MASK64 = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


@dataclass
class ErrorInjector:
    """Deterministic 5xx: request number ``n`` fails iff its hash falls below ``rate``."""

    seed: int
    rate: float
    _counter: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def would_fail(self, n: int) -> bool:
        """Whether the ``n``-th (0-based) admitted request fails."""
        if self.rate <= 0.0:
            return False
        u = _splitmix64((self.seed * 1_000_003 + n) & _MASK64) / 2.0**64
        return u < self.rate

    def next(self) -> bool:
        """Count one request and say whether it must fail."""
        with self._lock:
            n = self._counter
            self._counter += 1
        return self.would_fail(n)


@dataclass
class RateLimiter:
    """Sliding-window limit per key (real monotonic time, not the simulator clock)."""

    limit: int
    window: float
    _hits: dict[str, deque[float]] = field(default_factory=dict, repr=False)

    def check(self, key: str, now: float | None = None) -> float:
        """Record a hit; return 0 if admitted, else seconds until a slot frees up."""
        now = time.monotonic() if now is None else now
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        if len(hits) >= self.limit:
            return hits[0] + self.window - now
        hits.append(now)
        return 0.0


ERROR_INJECTOR = web.AppKey("error_injector", ErrorInjector)
RATE_LIMITER = web.AppKey("rate_limiter", RateLimiter)


def _json_error(status: type[web.HTTPException], message: str, **headers: str) -> web.HTTPException:
    return status(
        text=json.dumps({"error": message}), content_type="application/json", headers=headers
    )


def _encode_token(doc: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(doc, separators=(",", ":")).encode()).decode()


def _decode_token(token: str) -> dict[str, Any]:
    try:
        doc = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise _json_error(web.HTTPBadRequest, "invalid page_token") from exc
    if not isinstance(doc, dict) or not {"d", "pos", "hi"} <= doc.keys():
        raise _json_error(web.HTTPBadRequest, "invalid page_token")
    return doc


def create_app(
    sim: VendorSimulator,
    *,
    token: str,
    clock: Clock,
    rate_limit: int = 50,
    rate_window_seconds: float = 1.0,
    error_rate: float = 0.0,
    default_page_size: int = 1_000,
    max_page_size: int = 10_000,
) -> web.Application:
    """The vendor REST application over ``sim``; visibility follows ``clock``."""
    limiter = RateLimiter(rate_limit, rate_window_seconds)
    errors = ErrorInjector(sim.config.seed, error_rate)
    expected = f"Bearer {token}".encode()

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path == "/v1/health":
            return await handler(request)
        given = request.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            raise _json_error(web.HTTPUnauthorized, "missing or invalid bearer token")
        wait = limiter.check(token)
        if wait > 0:
            raise _json_error(
                web.HTTPTooManyRequests,
                "rate limit exceeded",
                **{"Retry-After": str(math.ceil(wait))},
            )
        if errors.next():
            raise _json_error(web.HTTPServiceUnavailable, "transient vendor error, retry")
        return await handler(request)

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "now": to_utc_iso(clock.now())})

    async def dataset(request: web.Request) -> web.Response:
        name = request.match_info["dataset"]
        if name not in DATASETS:
            raise _json_error(web.HTTPNotFound, f"unknown dataset {name!r}")
        source: PublishedDataset = sim.rest_sources[name]
        q = request.query
        try:
            page_size = int(q.get("page_size", default_page_size))
        except ValueError:
            raise _json_error(web.HTTPBadRequest, "page_size must be an integer") from None
        if not 1 <= page_size <= max_page_size:
            raise _json_error(web.HTTPBadRequest, f"page_size must be in [1, {max_page_size}]")
        if "page_token" in q:
            tok = _decode_token(q["page_token"])
            if tok["d"] != name:
                raise _json_error(web.HTTPBadRequest, "page_token belongs to another dataset")
            pos, hi, since_iso = int(tok["pos"]), int(tok["hi"]), tok.get("since")
        else:
            since_iso = q.get("since")
            try:
                since_ns = instant_ns(parse_instant(since_iso)) if since_iso else -1
            except ValueError:
                raise _json_error(web.HTTPBadRequest, "since must be an ISO-8601 instant") from None
            pos = source.count_published_until(since_ns) if since_iso else 0
            hi = source.count_published_until(instant_ns(clock.now()))
            since_iso = to_utc_iso(parse_instant(since_iso)) if since_iso else None
        end = min(pos + page_size, hi)
        data = source.records(pos, end) if end > pos else []
        body: dict[str, Any] = {"data": data, "next_page_token": None, "cursor": None}
        if end < hi:
            body["next_page_token"] = _encode_token(
                {"d": name, "pos": end, "hi": hi, "since": since_iso}
            )
        else:
            # Cursor = newest published_at in the snapshot, never older than ``since``.
            last = source.records(hi - 1, hi)[0]["published_at"] if hi > 0 else None
            candidates = [c for c in (last, since_iso) if c is not None]
            body["cursor"] = max(candidates) if candidates else None
        return web.json_response(body)

    app = web.Application(middlewares=[guard])
    app.router.add_get("/v1/health", health)
    app.router.add_get("/v1/{dataset}", dataset)
    app[ERROR_INJECTOR] = errors
    app[RATE_LIMITER] = limiter
    return app
