"""Local PostgreSQL and Redis for production-mode tests: a throwaway database per test.

Both services run on this machine's loopback (PostgreSQL with trust auth, Redis without a
password). A test that needs them is skipped, with the reason, only when one is not
listening; everything else that goes wrong is a failure.

The fixtures of ``conftest.py`` serve most tests; a test that must not share a broker DB
or a database-name prefix with them (it may run beside them) uses :func:`fresh_database`
and :func:`redis_queues` directly.
"""

from __future__ import annotations

import secrets
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def require_postgres_and_redis() -> None:
    """Skip, naming what is missing, unless PostgreSQL and Redis both listen."""
    for what, host, port in (("PostgreSQL", PG_HOST, PG_PORT), ("Redis", REDIS_HOST, REDIS_PORT)):
        if not _listening(host, port):
            pytest.skip(f"{what} is not reachable on {host}:{port}")


@contextmanager
def fresh_database(prefix: str = "airflow_prod_test") -> Iterator[str]:
    """A fresh database ``<prefix>_<hex>``; yields its SQLAlchemy URL; dropped after."""
    if not _listening(PG_HOST, PG_PORT):
        pytest.skip(f"PostgreSQL is not reachable on {PG_HOST}:{PG_PORT}")
    import psycopg2

    name = f"{prefix}_{secrets.token_hex(4)}"
    admin = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres")
    admin.autocommit = True  # CREATE/DROP DATABASE cannot run inside a transaction
    try:
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        yield f"postgresql+psycopg2://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        with admin.cursor() as cur:
            # FORCE: a component killed mid-query may leave a backend connected.
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@contextmanager
def redis_queues(db: int = 0, count: int = 1) -> Iterator[tuple[str, tuple[str, ...]]]:
    """``(broker_url, queues)``: Redis DB ``db`` and ``count`` queue names unique to the caller.

    The queue names isolate the caller's Celery traffic from any other user of the server;
    their keys are deleted afterwards.
    """
    if not _listening(REDIS_HOST, REDIS_PORT):
        pytest.skip(f"Redis is not reachable on {REDIS_HOST}:{REDIS_PORT}")
    import redis

    stem = f"alphafactory-test-{secrets.token_hex(4)}"
    queues = (stem,) if count == 1 else tuple(f"{stem}-{i}" for i in range(count))
    url = f"redis://{REDIS_HOST}:{REDIS_PORT}/{db}"
    try:
        yield url, queues
    finally:
        client = redis.Redis.from_url(url)
        try:
            for queue in queues:
                keys = [
                    queue,
                    f"_kombu.binding.{queue}",
                    f"_kombu.binding_permanent.{queue}",
                    *client.keys(f"{queue}\x06\x16*"),
                ]
                client.delete(*keys)
        finally:
            client.close()
