"""Where the paper broker keeps its account state: one JSON document, locked while changed.

* :class:`LocalAccountFile` — a file replaced atomically under an exclusive ``flock``
  (several processes on one machine may share it).
* :class:`S3AccountObject` — an object on S3 (or any S3-compatible server). Changes hold a
  lease: a lock object created with a conditional put (``If-None-Match: *``), deleted when
  done; a lease older than ``lease_seconds`` is taken as abandoned (its holder died). Reads
  need no lock: a put replaces the object atomically.

:func:`account_store` puts the document under the lake root (``<root>/broker/paper-<id>.json``),
so two lakes never share an account and a worker with an empty working directory finds it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast

from pipelines.execution.broker import BrokerError
from pipelines.lake.storage import s3_bucket_and_prefix, s3_client

State = dict[str, Any]


def empty_state() -> State:
    return {"version": 1, "seq": 0, "orders": {}, "fills": [], "positions": {}, "cash": {}}


class AccountStore(Protocol):
    """The broker's state document."""

    @property
    def location(self) -> str:
        """A path or URI naming the document (for messages)."""
        ...

    def prepare(self) -> None:
        """Make sure the document can be written (e.g. create its folder)."""
        ...

    def open(self, write: bool = True) -> contextlib.AbstractContextManager[State]:
        """The state; with ``write`` under an exclusive lock, saved atomically on exit."""
        ...


@dataclass(frozen=True)
class LocalAccountFile:
    """The state as a local JSON file (see module docstring)."""

    path: Path

    @property
    def location(self) -> str:
        return str(self.path)

    def prepare(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def open(self, write: bool = True) -> Iterator[State]:
        self.prepare()
        lock_path = self.path.with_name(self.path.name + ".lock")
        with open(lock_path, "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                if self.path.exists():
                    state = cast(State, json.loads(self.path.read_text()))
                else:
                    state = empty_state()
                yield state
                if write:
                    tmp = self.path.with_name(self.path.name + ".tmp")
                    tmp.write_text(json.dumps(state, sort_keys=True, indent=1))
                    os.replace(tmp, self.path)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


class AccountLockTimeout(BrokerError):
    """The account's lease could not be taken in time."""


@dataclass
class S3AccountObject:
    """The state as an S3 object, changed under a lease (see module docstring)."""

    bucket: str
    key: str
    client: Any
    lease_seconds: float = 120.0
    wait_seconds: float = 300.0

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def prepare(self) -> None:
        return None

    def _read(self) -> State:
        from botocore.exceptions import ClientError

        try:
            obj = self.client.get_object(Bucket=self.bucket, Key=self.key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code", "") in {"NoSuchKey", "404"}:
                return empty_state()
            raise
        return cast(State, json.loads(obj["Body"].read()))

    def _acquire(self) -> str:
        from botocore.exceptions import ClientError

        lock_key = self.key + ".lock"
        token = f"{os.getpid()}-{time.time_ns()}"
        deadline = time.monotonic() + self.wait_seconds
        while True:
            try:
                self.client.put_object(
                    Bucket=self.bucket, Key=lock_key, Body=token.encode(), IfNoneMatch="*"
                )
                return lock_key
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                if code not in {"PreconditionFailed", "412", "ConditionalRequestConflict"}:
                    raise
            self._break_if_abandoned(lock_key)
            if time.monotonic() > deadline:
                raise AccountLockTimeout(
                    f"{self.location}: lease held for over {self.wait_seconds}s"
                )
            time.sleep(0.05)

    def _break_if_abandoned(self, lock_key: str) -> None:
        from botocore.exceptions import ClientError

        try:
            head = self.client.head_object(Bucket=self.bucket, Key=lock_key)
        except ClientError:
            return
        age = time.time() - head["LastModified"].timestamp()
        if age > self.lease_seconds:
            self.client.delete_object(Bucket=self.bucket, Key=lock_key)

    @contextlib.contextmanager
    def open(self, write: bool = True) -> Iterator[State]:
        if not write:
            yield self._read()
            return
        lock_key = self._acquire()
        try:
            state = self._read()
            yield state
            self.client.put_object(
                Bucket=self.bucket,
                Key=self.key,
                Body=json.dumps(state, sort_keys=True, indent=1).encode(),
            )
        finally:
            self.client.delete_object(Bucket=self.bucket, Key=lock_key)


def account_store(
    lake_root: str, storage_options: dict[str, str] | None, account: str
) -> AccountStore:
    """The paper account ``account``'s document under the lake root (module docstring)."""
    name = f"broker/paper-{account}.json"
    if not lake_root.startswith("s3://"):
        return LocalAccountFile(Path(lake_root) / name)
    bucket, prefix = s3_bucket_and_prefix(lake_root)
    key = f"{prefix}/{name}" if prefix else name
    return S3AccountObject(bucket, key, s3_client(storage_options))
