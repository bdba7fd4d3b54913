"""The raw zone: vendor files kept byte-for-byte, immutable, addressed by checksum.

An object lives at ``raw/<feed>/<logical date>/<sha256>/<file name>``: a file name seen
again with different bytes gets a new folder (a new version) and the old bytes stay.
Writes are create-only: a local file is linked into place atomically and made read-only;
on S3 the put is conditional (``If-None-Match: *``).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pipelines.lake.errors import RawZoneError
from pipelines.lake.storage import s3_bucket_and_prefix, s3_client


class RawStore(Protocol):
    """Create-only object storage for raw files."""

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Store ``data`` at ``key`` unless it exists; True when this call stored it."""
        ...

    def get(self, key: str) -> bytes:
        """The bytes at ``key``; raises KeyError when absent."""
        ...

    def uri(self, key: str) -> str:
        """A URI naming the object, for the manifest."""
        ...


@dataclass(frozen=True)
class LocalRawStore:
    """Raw zone on the local filesystem."""

    root: Path

    def put_if_absent(self, key: str, data: bytes) -> bool:
        target = self.root / key
        if target.exists():
            return False
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".landing-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o444)
            try:
                # link() fails if the target exists: two landers never overwrite each other.
                os.link(tmp, target)
            except FileExistsError:
                return False
            return True
        finally:
            os.unlink(tmp)

    def get(self, key: str) -> bytes:
        path = self.root / key
        if not path.is_file():
            raise KeyError(key)
        return path.read_bytes()

    def uri(self, key: str) -> str:
        return str(self.root / key)


@dataclass
class S3RawStore:
    """Raw zone on S3 (or any S3-compatible server) through boto3."""

    bucket: str
    prefix: str
    client: Any

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def put_if_absent(self, key: str, data: bytes) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.put_object(
                Bucket=self.bucket, Key=self._key(key), Body=data, IfNoneMatch="*"
            )
            return True
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in {"PreconditionFailed", "412", "ConditionalRequestConflict"}:
                return False
            raise

    def get(self, key: str) -> bytes:
        from botocore.exceptions import ClientError

        try:
            obj = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            raise KeyError(key) from exc
        body: bytes = obj["Body"].read()
        return body

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"


def make_raw_store(raw_uri: str, storage_options: dict[str, str] | None) -> RawStore:
    """A raw store for a local path or an ``s3://bucket/prefix`` URI."""
    if not raw_uri.startswith("s3://"):
        return LocalRawStore(Path(raw_uri))
    bucket, prefix = s3_bucket_and_prefix(raw_uri)
    return S3RawStore(bucket, prefix, s3_client(storage_options))


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def object_key(feed: str, logical_date: str, sha256: str, file_name: str) -> str:
    """Checksum-addressed key of a raw object (see module docstring)."""
    for part, label in ((feed, "feed"), (file_name, "file name")):
        if not part or "/" in part or part in {".", ".."}:
            raise RawZoneError(f"invalid {label} {part!r} for the raw zone")
    return f"{feed}/{logical_date}/{sha256}/{file_name}"
