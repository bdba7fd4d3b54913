"""Local PostgreSQL and Redis for production-mode tests: a throwaway database per test.

Both services run on this machine's loopback (PostgreSQL with trust auth, Redis without a
password). A test that needs them is skipped, with the reason, only when one is not
listening; everything else that goes wrong is a failure.
"""

from __future__ import annotations

import secrets
import socket
from collections.abc import Iterator

import pytest

PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture
def postgres_db() -> Iterator[str]:
    """A fresh database ``airflow_prod_test_<hex>``; yields its SQLAlchemy URL; dropped after."""
    if not _listening(PG_HOST, PG_PORT):
        pytest.skip(f"PostgreSQL is not reachable on {PG_HOST}:{PG_PORT}")
    import psycopg2

    name = f"airflow_prod_test_{secrets.token_hex(4)}"
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


@pytest.fixture
def redis_queue() -> Iterator[tuple[str, str]]:
    """``(broker_url, queue)``: Redis DB 0 and a queue name unique to this test.

    The queue name isolates this test's Celery traffic from any other user of the server;
    its keys are deleted afterwards.
    """
    if not _listening(REDIS_HOST, REDIS_PORT):
        pytest.skip(f"Redis is not reachable on {REDIS_HOST}:{REDIS_PORT}")
    import redis

    queue = f"alphafactory-test-{secrets.token_hex(4)}"
    url = f"redis://{REDIS_HOST}:{REDIS_PORT}/0"
    yield url, queue
    client = redis.Redis.from_url(url)
    try:
        keys = [queue, f"_kombu.binding.{queue}", *client.keys(f"{queue}\x06\x16*")]
        client.delete(*keys)
    finally:
        client.close()
