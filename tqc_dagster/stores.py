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
import hashlib
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import polars as pl
from boto3.exceptions import S3UploadFailedError
from botocore.exceptions import ClientError
from dagster_aws.s3 import S3Resource

from tqc_dagster.config import ConfigError, TqcConfig

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

    @contextmanager
    def local_copy(self, uri: str) -> Iterator[str]:
        yield uri

    def read_text(self, uri: str) -> str:
        return Path(uri).read_text()

    def read_parquet(self, uri: str) -> pl.DataFrame:
        return pl.read_parquet(uri)

    def parquet_rows(self, uri: str) -> int:
        """From the file's footer, without reading its data."""
        return pl.scan_parquet(uri).select(pl.len()).collect().item()

    def write_parquet(self, frame: pl.DataFrame, uri: str) -> None:
        Path(uri).parent.mkdir(parents=True, exist_ok=True)
        temporary = f"{uri}.tmp-{uuid.uuid4().hex}"
        try:
            frame.write_parquet(temporary, compression="zstd", statistics=True)
            os.replace(temporary, uri)
        finally:
            if os.path.exists(temporary):
                os.remove(temporary)

    def publish_folder(self, uri: str, write: Callable[[Path], None]) -> None:
        """Build the folder in a hidden staging folder beside it, then swap it in whole.

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
            (staging / SUCCESS_MARKER).write_text("")
            if destination.exists():
                os.replace(destination, retired)
            os.replace(staging, destination)
        finally:
            for leftover in (staging, retired):
                if leftover.exists():
                    shutil.rmtree(leftover)


def _split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri[len(S3_SCHEME) :].partition("/")
    return bucket, key


def _segment_pattern(segment: str) -> str:
    """One path segment of a glob, as a local glob reads it: `*` and `?` stay inside the segment,
    `[...]` / `[!...]` are character classes, and a wildcard never matches a leading dot."""
    parts = re.split(r"(\*|\?|\[!?[^\]]+\])", segment)
    pattern = "" if segment.startswith(".") else r"(?!\.)"
    for part in parts:
        if part == "*":
            pattern += "[^/]*"
        elif part == "?":
            pattern += "[^/]"
        elif part.startswith("[") and part.endswith("]") and len(part) > 2:
            pattern += "[^" + part[2:-1] + "]" if part.startswith("[!") else part
        else:
            pattern += re.escape(part)
    return pattern


def _key_pattern(key_glob: str) -> re.Pattern:
    """A glob over S3 keys that matches exactly what the same glob matches in a local folder."""
    return re.compile("/".join(_segment_pattern(segment) for segment in key_glob.split("/")))


_CLIENTS: dict[str, object] = {}
S3_SETTINGS = ("endpoint_url", "region_name", "profile_name", "use_ssl", "verify", "use_unsigned_session", "max_attempts", "aws_access_key_id")


class S3Store:
    def __init__(self, resource: S3Resource):
        # One boto3 client per S3 setting and process: making one costs ~0.2 s, and they are thread-safe.
        # Keyed by the settings and the credentials in the environment (hashed, never stored):
        # a process that switches credentials gets a new client.
        credentials = hashlib.sha256(repr(sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_"))).encode()).hexdigest()
        settings = repr([getattr(resource, name, None) for name in S3_SETTINGS]) + credentials
        if settings not in _CLIENTS:
            _CLIENTS[settings] = resource.get_client()
        self.client = _CLIENTS[settings]

    @contextmanager
    def _errors(self, uri: str) -> Iterator[None]:
        """S3 failures as a StorageError that names the URI and what to check."""
        try:
            yield
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code in ("404", "NotFound") and not self._bucket_exists(uri):
                code = "NoSuchBucket"  # a HEAD on a missing bucket says only 404
            raise self._storage_error(uri, code, error.response.get("Error", {}).get("Message", "")) from None
        except S3UploadFailedError as error:  # upload_file wraps the ClientError in its message
            code = re.search(r"\((\w+)\)", str(error))
            raise self._storage_error(uri, code.group(1) if code else "", str(error)) from None

    @staticmethod
    def _storage_error(uri: str, code: str, message: str) -> StorageError:
        if code == "NoSuchBucket":
            return StorageError(f"{uri}: the S3 bucket '{_split(uri)[0]}' does not exist")
        if code in ("AccessDenied", "403", "Forbidden", "AllAccessDisabled", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return StorageError(f"{uri}: access denied ({code}); check the credentials and the bucket policy")
        return StorageError(f"{uri}: S3 error {code}: {message}")

    def _bucket_exists(self, uri: str) -> bool:
        try:
            self.client.head_bucket(Bucket=_split(uri)[0])
            return True
        except ClientError:
            return False

    def glob_states(self, pattern: str) -> dict[str, FileState]:
        """Matching objects with their size and ETag, from paginated listings under the literal prefix."""
        bucket, key_glob = _split(pattern)
        wildcard = WILDCARDS.search(key_glob)
        prefix = key_glob[: wildcard.start()] if wildcard else key_glob
        matcher = _key_pattern(key_glob)
        found = {}
        with self._errors(pattern):
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    if matcher.fullmatch(item["Key"]):
                        found[f"{S3_SCHEME}{bucket}/{item['Key']}"] = FileState(item["Size"], item["ETag"].strip('"'))
        return dict(sorted(found.items()))

    def glob(self, pattern: str) -> list[str]:
        return list(self.glob_states(pattern))

    def exists(self, uri: str) -> bool:
        bucket, key = _split(uri)
        try:
            self.client.head_object(Bucket=bucket, Key=key)
            return True
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound") and self._bucket_exists(uri):
                return False
            with self._errors(uri):
                raise

    def state(self, uri: str) -> FileState:
        bucket, key = _split(uri)
        with self._errors(uri):
            head = self.client.head_object(Bucket=bucket, Key=key)
        return FileState(head["ContentLength"], head["ETag"].strip('"'))

    @contextmanager
    def local_copy(self, uri: str) -> Iterator[str]:
        """Stream the object to a temporary file (never all of it in memory), removed afterwards."""
        bucket, key = _split(uri)
        handle, path = tempfile.mkstemp(prefix="tqc-", suffix=Path(key).suffix)
        os.close(handle)
        try:
            with self._errors(uri):
                self.client.download_file(bucket, key, path)
            yield path
        finally:
            os.remove(path)

    def read_text(self, uri: str) -> str:
        bucket, key = _split(uri)
        with self._errors(uri):
            return self.client.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")

    def read_parquet(self, uri: str) -> pl.DataFrame:
        with self.local_copy(uri) as path:
            return pl.read_parquet(path)

    def parquet_rows(self, uri: str) -> int:
        with self.local_copy(uri) as path:
            return LocalStore().parquet_rows(path)

    def _upload(self, path: str, uri: str) -> None:
        bucket, key = _split(uri)
        with self._errors(uri):
            self.client.upload_file(path, bucket, key)

    def write_parquet(self, frame: pl.DataFrame, uri: str) -> None:
        with tempfile.TemporaryDirectory(prefix="tqc-") as folder:
            path = os.path.join(folder, "part.parquet")
            frame.write_parquet(path, compression="zstd", statistics=True)
            self._upload(path, uri)

    def publish_folder(self, uri: str, write: Callable[[Path], None]) -> None:
        """Upload a folder built locally; `_SUCCESS` goes last and stale files of an older export are removed."""
        bucket, prefix = _split(uri.rstrip("/") + "/")
        with tempfile.TemporaryDirectory(prefix="tqc-") as folder:
            staging = Path(folder)
            write(staging)
            files = sorted(p for p in staging.rglob("*") if p.is_file())
            with self._errors(uri):
                self.client.delete_object(Bucket=bucket, Key=prefix + SUCCESS_MARKER)
                old = [item["Key"] for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix) for item in page.get("Contents", [])]
                for path in files:
                    self.client.upload_file(str(path), bucket, prefix + path.relative_to(staging).as_posix())
                stale = set(old) - {prefix + p.relative_to(staging).as_posix() for p in files}
                for key in sorted(stale):
                    self.client.delete_object(Bucket=bucket, Key=key)
                self.client.put_object(Bucket=bucket, Key=prefix + SUCCESS_MARKER, Body=b"")


def store_for(uri: str, s3: S3Resource | None = None) -> LocalStore | S3Store:
    return S3Store(s3 or S3Resource()) if is_s3(uri) else LocalStore()


def s3_resource(config: TqcConfig) -> S3Resource:
    return S3Resource(endpoint_url=config.s3.endpoint_url, region_name=config.s3.region)


def input_files(config: TqcConfig, judge_version: str, s3: S3Resource | None = None) -> list[str]:
    """The batch output files of a judge version, sorted; a glob matching nothing is a config error."""
    pattern = config.judge_versions[judge_version].input
    files = store_for(pattern, s3 or s3_resource(config)).glob(pattern)
    if not files:
        raise ConfigError(f"{config.config_path}: judge_versions.{judge_version}.input matches no file: {pattern}")
    return files
