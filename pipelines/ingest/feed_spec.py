"""Feeds are declared, not coded: one YAML file per feed, loaded into :class:`FeedSpec`.

The shipped feeds live beside this module in ``feeds/``; a user adds their own vendor by
dropping a YAML file into a directory named by ``ALPHAFACTORY_FEEDS_DIR`` (or passing
``extra_dirs``). See the README's "Bring your own vendor".
"""

from __future__ import annotations

import datetime as dt
from functools import cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pipelines.errors import AlphaFactoryError
from pipelines.ingest.feed_index import feed_dirs, render_remote
from pipelines.lake.catalog import get_table

#: How a file-drop feed's knowledge time is set: the manifest's ``published_at`` (default;
#: a manifest without it is refused), the moment we received the files, or each file's
#: modification time on the vendor's server.
FILE_KNOWLEDGE_TIMES = ("manifest", "receipt", "file_mtime")


class SqlExpr(BaseModel):
    """A DuckDB expression over the vendor's columns (all read as text)."""

    model_config = ConfigDict(extra="forbid")
    sql: str


class FeedSpec(BaseModel):
    """One vendor feed: where its files are, how to read them, where they land."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    table: str = Field(description="lake table the rows land in")
    contract: str = Field(
        description="data contract name, resolved on the contract search path "
        "(ALPHAFACTORY_CONTRACT_PATH folders, then data_contracts/)"
    )
    protocol: Literal["sftp", "rest"]
    connection_id: str
    depends_on: tuple[str, ...] = Field(
        default=(),
        description="feeds that must load first (besides the table rule: prices and "
        "corporate actions after the security master)",
    )
    columns: dict[str, str | SqlExpr] = Field(description="lake column -> vendor column or {sql}")
    ignore_columns: tuple[str, ...] = Field(
        default=(), description="vendor columns deliberately not loaded (others are reported)"
    )
    # SFTP feeds: folder and file names are templates over the session date,
    # ``{date:<strftime>}`` (see :func:`pipelines.ingest.feed_index.render_remote`)
    remote_dir: str | None = Field(default=None, description="template, e.g. /out/{date:%Y%m%d}")
    file: str | None = Field(default=None, description="template, e.g. px_{date:%Y%m%d}.csv")
    manifest: str | None = Field(default=None, description="template (usually a fixed name)")
    format: Literal["csv", "parquet"] = "csv"
    compression: Literal["gzip", "none"] = "gzip"
    delimiter: str = ","
    encoding: str = "utf-8"
    date_format: str = "%Y-%m-%d"
    null_values: tuple[str, ...] = Field(
        default=("",),
        description="CSV cells read as missing; only the empty cell unless declared (a ticker "
        "'NA' or a name 'NULL' is a value, not a gap)",
    )
    corrections: str | None = Field(
        default=None, description="template over the previous session, e.g. fix_{previous:%Y%m%d}"
    )
    # REST feeds
    endpoint: str | None = None
    page_size: int = 1000
    # Knowledge time. SFTP feeds: one of FILE_KNOWLEDGE_TIMES (see pipelines/vendors/FORMATS.md,
    # "Knowledge time"); REST feeds: the record field holding the publication time.
    known_at: str = "manifest"
    source_path: str | None = None

    @model_validator(mode="after")
    def _check(self) -> FeedSpec:
        spec = get_table(self.table)
        allowed = {f.name for f in spec.input_fields} - {"known_at"}
        unknown = sorted(set(self.columns) - allowed)
        if unknown:
            raise ValueError(f"columns {unknown} are not in lake table {self.table!r}")
        if "valid_date" not in self.columns:
            raise ValueError("columns must map valid_date (the business date of each row)")
        if self.protocol == "sftp" and not (self.remote_dir and self.file):
            raise ValueError("an sftp feed needs remote_dir and file")
        if self.protocol == "rest" and not self.endpoint:
            raise ValueError("a rest feed needs endpoint")
        if self.protocol == "sftp" and self.known_at not in FILE_KNOWLEDGE_TIMES:
            raise ValueError(
                f"known_at {self.known_at!r}: an sftp feed takes one of "
                f"{', '.join(FILE_KNOWLEDGE_TIMES)}"
            )
        if self.protocol == "sftp" and self.known_at == "manifest" and not self.manifest:
            raise ValueError("known_at: manifest needs a manifest file (or known_at: receipt)")
        probe = dt.date(2001, 2, 3)
        for template in (self.remote_dir, self.file, self.manifest):
            if template is not None:
                render_remote(template, probe)
        if self.corrections is not None:
            render_remote(self.corrections, probe, field="previous")
        return self

    @model_validator(mode="after")
    def _names_stay_in_the_day_folder(self) -> FeedSpec:
        """``file``, ``manifest`` and ``corrections`` name a file inside the day's folder.

        They are joined to ``remote_dir`` and used as raw-zone names, so a separator or a
        ``..`` would read (and land) a file outside the day folder: refused at load time.
        """
        probe = dt.date(2001, 2, 3)
        names = {
            "file": (self.file, "date"),
            "manifest": (self.manifest, "date"),
            "corrections": (self.corrections, "previous"),
        }
        for key, (template, var) in names.items():
            if template is None:
                continue
            rendered = render_remote(template, probe, field=var)
            if not rendered or rendered in (".", "..") or any(s in rendered for s in "/\\"):
                raise ValueError(
                    f"{key}: {template!r} renders to {rendered!r}, not a file name inside the "
                    "day folder (no '/', '\\', '..'; put folders in remote_dir)"
                )
        return self

    def remote_folder(self, day: dt.date) -> str:
        """Remote folder of business day ``day`` (no trailing slash)."""
        assert self.remote_dir is not None
        return render_remote(self.remote_dir, day).rstrip("/")

    def file_name(self, day: dt.date) -> str:
        """The feed's main file name for business day ``day``."""
        return render_remote(self.file or "", day)

    def manifest_name(self, day: dt.date) -> str | None:
        """The manifest's file name for business day ``day`` (None: no manifest)."""
        return render_remote(self.manifest, day) if self.manifest else None

    def remote_path(self, day: dt.date, name: str | None = None) -> str:
        """Remote path of ``name`` (default: the feed's file) for business day ``day``.

        ``name=""`` gives the folder with a trailing slash (callers strip it).
        """
        return f"{self.remote_folder(day)}/{self.file_name(day) if name is None else name}"

    def correction_file(self, previous: dt.date) -> str | None:
        """Name of the correction file for ``previous`` day, if the feed declares one."""
        if not self.corrections:
            return None
        return render_remote(self.corrections, previous, field="previous")


class FeedConfigError(AlphaFactoryError, ValueError):
    """A feed YAML file is malformed; the message names the file and the problem."""


def load_feed(path: Path) -> FeedSpec:
    """Parse one feed YAML file, with an error naming the file on any problem."""
    try:
        raw = yaml.safe_load(path.read_text())
        return FeedSpec.model_validate({**raw, "source_path": str(path)})
    except (yaml.YAMLError, ValidationError, TypeError, KeyError, ValueError) as exc:
        raise FeedConfigError(f"feed file {path}: {exc}") from exc


@cache
def _load_dirs(dirs: tuple[str, ...]) -> dict[str, FeedSpec]:
    feeds: dict[str, FeedSpec] = {}
    for directory in dirs:
        for path in sorted(Path(directory).glob("*.yaml")):
            feed = load_feed(path)
            if feed.name in feeds:
                raise FeedConfigError(f"feed {feed.name!r} declared twice ({path})")
            feeds[feed.name] = feed
    return feeds


def load_feeds(extra_dirs: tuple[str, ...] = ()) -> dict[str, FeedSpec]:
    """Every declared feed by name: shipped ones (unless ``ALPHAFACTORY_SHIPPED_FEEDS=false``),
    ``ALPHAFACTORY_FEEDS_DIR``, ``extra_dirs``."""
    dirs = [str(d) for d in feed_dirs()]
    return dict(_load_dirs(tuple(dirs + list(extra_dirs))))
