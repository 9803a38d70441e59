"""Where files live: a local folder or S3, behind one small interface.

Every path in the pipeline is a URI (`/abs/path` or `s3://bucket/key`); `store_for(uri)` gives
the store that reads and writes it. S3 goes through dagster-aws's S3Resource (boto3's default
credential chain; `endpoint_url` or AWS_ENDPOINT_URL for S3-compatible servers).

Writes are atomic from a reader's point of view: a local file is written beside its target
and renamed into place; an S3 object appears only when its (multipart) upload completes. A
folder of files (an export) is complete when its `_SUCCESS` marker exists: the marker is
removed before any file is rewritten and written after the last one.
"""

from __future__ import annotations

import glob as local_glob
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from tqc_dagster.config import S3, ConfigError, TqcConfig

SUCCESS_MARKER = "_SUCCESS"
S3_SCHEME = "s3://"
WILDCARDS = re.compile(r"[*?\[]")


class StorageError(RuntimeError):
    """A storage problem with the URI named: missing bucket, denied access, nothing matched."""


@dataclass(frozen=True)
class FileState:
    """Enough to tell a rewritten file: its size and a version (S3 ETag, or local mtime)."""

    size: int
    version: str


def is_s3(uri: str) -> bool:
    return uri.startswith(S3_SCHEME)


def join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *parts]) if is_s3(base) else str(Path(base, *parts))


def parent(uri: str) -> str:
    return uri.rsplit("/", 1)[0] if is_s3(uri) else str(Path(uri).parent)


def _replace_atomically(uri: str, write: Callable[[str], object]) -> None:
    """`write(temporary)` a file beside `uri`, then rename it into place; nothing partial is ever left under either name."""
    temporary = f"{uri}.tmp-{uuid.uuid4().hex}"
    try:
        write(temporary)
        os.replace(temporary, uri)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


class LocalStore:
    def glob(self, pattern: str) -> list[str]:
        return sorted(local_glob.glob(pattern))

    def glob_states(self, pattern: str) -> dict[str, FileState]:
        return {uri: self.state(uri) for uri in self.glob(pattern)}

    def exists(self, uri: str) -> bool:
        return os.path.exists(uri)

    def state(self, uri: str) -> FileState:
        stat = os.stat(uri)
        return FileState(stat.st_size, str(stat.st_mtime_ns))

    def modified(self, uri: str) -> float:
        """When the file was last written, in POSIX seconds (its mtime)."""
        return os.stat(uri).st_mtime

    @contextmanager
    def local_copy(self, uri: str) -> Iterator[str]:
        yield uri

    @contextmanager
    def local_folder(self, uri: str) -> Iterator[str]:
        yield uri

    def read_text(self, uri: str) -> str:
        return Path(uri).read_text()

    def read_parquet(self, uri: str) -> pl.DataFrame:
        return pl.read_parquet(uri)

    def parquet_rows(self, uri: str) -> int:
        """From the file's footer, without reading its data."""
        return pl.scan_parquet(uri).select(pl.len()).collect().item()

    def write_parquet(self, frame: pl.DataFrame, uri: str) -> None:
        """Write beside the target and rename into place; first remove the `<name>.tmp-*` files a killed earlier
        write of the same target left (one writer per target: a partition runs in one run at a time)."""
        target = Path(uri)
        target.parent.mkdir(parents=True, exist_ok=True)
        for leftover in target.parent.glob(f"{local_glob.escape(target.name)}.tmp-*"):
            leftover.unlink(missing_ok=True)
        _replace_atomically(uri, lambda temporary: frame.write_parquet(temporary, compression="zstd", statistics=True))

    def write_file(self, path: str, uri: str) -> None:
        """Copy a local file to `uri` atomically: written beside the target, then renamed into place."""
        Path(uri).parent.mkdir(parents=True, exist_ok=True)
        _replace_atomically(uri, lambda temporary: shutil.copyfile(path, temporary))

    def publish_folder(self, uri: str, write: Callable[[Path], None], markers: Sequence[str] = ("",)) -> None:
        """Build the folder in a hidden staging folder beside it, then swap it in whole, with a `_SUCCESS`
        marker in each of the `markers` subfolders ("" is the folder itself). When `write` raises, nothing
        is published and the previous folder stays as it was.

        A crash between the two renames leaves the previous folder under `.<name>.old-*`; the
        next publish puts it back first (and clears what killed runs left), so a finished
        export is never lost.
        """
        destination = Path(uri)
        destination.parent.mkdir(parents=True, exist_ok=True)
        if not destination.exists():
            for retired_before in sorted(destination.parent.glob(f".{destination.name}.old-*"), key=os.path.getmtime)[-1:]:
                os.replace(retired_before, destination)
        for abandoned in destination.parent.glob(f".{destination.name}.*-*"):  # staging or retired folders of killed runs
            shutil.rmtree(abandoned)
        token = uuid.uuid4().hex
        staging = destination.parent / f".{destination.name}.tmp-{token}"
        retired = destination.parent / f".{destination.name}.old-{token}"
        try:
            staging.mkdir()
            write(staging)
            for marked in markers:
                (staging / marked / SUCCESS_MARKER).write_text("")
            if destination.exists():
                os.replace(destination, retired)
            os.replace(staging, destination)
        finally:
            for leftover in (staging, retired):
                if leftover.exists():
                    shutil.rmtree(leftover)


def store_for(uri: str, s3: S3 | None = None):
    """The store of a URI: LocalStore, or for s3:// an S3Store (boto3 and dagster-aws are imported, and a client
    made, only here: a config that names no s3:// URI never touches AWS, not even the credential chain)."""
    if not is_s3(uri):
        return LocalStore()
    from dagster_aws.s3 import S3Resource

    from tqc_dagster.s3_store import S3Store

    settings = s3 or S3()
    return S3Store(S3Resource(endpoint_url=settings.endpoint_url, region_name=settings.region))


def input_files(config: TqcConfig, judge_version: str) -> list[str]:
    """The batch output files of a judge version, sorted; a glob matching nothing is a config error."""
    pattern = config.judge_versions[judge_version].input
    files = store_for(pattern, config.s3).glob(pattern)
    if not files:
        raise ConfigError(f"{config.config_path}: judge_versions.{judge_version}.input matches no file: {pattern}")
    return files


def version_files(config: TqcConfig, judge_version: str) -> list[str]:
    """`input_files`, except that a version judged here (judge_from) may have no output yet (every job failed)."""
    version = config.judge_versions[judge_version]
    if version.judge_from is None:
        return input_files(config, judge_version)
    return store_for(version.input, config.s3).glob(version.input)
