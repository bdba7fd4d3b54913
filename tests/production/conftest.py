"""Fixtures of the production-mode tests: a fresh PostgreSQL database and a Redis queue
per test (:mod:`tests.production.services`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.production.services import fresh_database, redis_queues


@pytest.fixture
def postgres_db() -> Iterator[str]:
    """A fresh database ``airflow_prod_test_<hex>``; yields its SQLAlchemy URL; dropped after."""
    with fresh_database() as url:
        yield url


@pytest.fixture
def redis_queue() -> Iterator[tuple[str, str]]:
    """``(broker_url, queue)``: Redis DB 0 and a queue name unique to this test."""
    with redis_queues() as (url, (queue,)):
        yield url, queue
