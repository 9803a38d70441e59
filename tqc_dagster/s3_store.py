"""The S3 side of stores.py: listing, reading and atomic writing of s3:// URIs through dagster-aws's S3Resource.

Imported only when a URI is s3:// (see stores.store_for), so local-only configs never load boto3's
S3 machinery or walk the credential chain.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl
from boto3.exceptions import S3UploadFailedError
from botocore.exceptions import ClientError

from tqc_dagster.stores import S3_SCHEME, SUCCESS_MARKER, WILDCARDS, FileState, StorageError

if TYPE_CHECKING:
    from dagster_aws.s3 import S3Resource


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
        self.endpoint_url = resource.endpoint_url or os.environ.get("AWS_ENDPOINT_URL")
        self.region = resource.region_name or self.client.meta.region_name

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

    def modified(self, uri: str) -> float:
        """When the object was last written (its LastModified, whole seconds), in POSIX seconds."""
        bucket, key = _split(uri)
        with self._errors(uri):
            return self.client.head_object(Bucket=bucket, Key=key)["LastModified"].timestamp()

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

    @contextmanager
    def local_folder(self, uri: str) -> Iterator[str]:
        """Every object under the prefix, downloaded into a temporary folder (removed afterwards)."""
        bucket, prefix = _split(uri.rstrip("/") + "/")
        with tempfile.TemporaryDirectory(prefix="tqc-") as folder, self._errors(uri):
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    path = Path(folder, item["Key"][len(prefix) :])
                    path.parent.mkdir(parents=True, exist_ok=True)
                    self.client.download_file(bucket, item["Key"], str(path))
            yield folder

    def read_text(self, uri: str) -> str:
        bucket, key = _split(uri)
        with self._errors(uri):
            return self.client.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")

    def read_parquet(self, uri: str) -> pl.DataFrame:
        with self.local_copy(uri) as path:
            return pl.read_parquet(path)

    def parquet_rows(self, uri: str) -> int:
        """From the file's footer, which polars' own S3 reader fetches with ranged GETs (never the whole object);
        credentials from boto3's default chain (polars' CredentialProviderAWS), the endpoint and region of this store."""
        options = {"aws_region": self.region} if self.region else {}
        if self.endpoint_url:
            options |= {"aws_endpoint_url": self.endpoint_url, "aws_allow_http": str(self.endpoint_url.startswith("http://")).lower()}
        try:
            return pl.scan_parquet(uri, storage_options=options, credential_provider=pl.CredentialProviderAWS()).select(pl.len()).collect().item()
        except (OSError, pl.exceptions.PolarsError) as error:
            raise StorageError(f"{uri}: cannot read the parquet footer: {error}") from None

    def write_file(self, path: str, uri: str) -> None:
        """Upload a local file; the object appears only when its (multipart) upload completes."""
        bucket, key = _split(uri)
        with self._errors(uri):
            self.client.upload_file(path, bucket, key)

    def write_parquet(self, frame: pl.DataFrame, uri: str) -> None:
        with tempfile.TemporaryDirectory(prefix="tqc-") as folder:
            path = os.path.join(folder, "part.parquet")
            frame.write_parquet(path, compression="zstd", statistics=True)
            self.write_file(path, uri)

    def publish_folder(self, uri: str, write: Callable[[Path], None], markers: Sequence[str] = ("",)) -> None:
        """Upload a folder built locally. Every `_SUCCESS` under it is removed first and the new ones (in each
        of the `markers` subfolders, "" the folder itself) go last; stale files of an older export are removed.
        When `write` raises, nothing is uploaded or removed."""
        bucket, prefix = _split(uri.rstrip("/") + "/")
        with tempfile.TemporaryDirectory(prefix="tqc-") as folder:
            staging = Path(folder)
            write(staging)
            files = sorted(p for p in staging.rglob("*") if p.is_file())
            with self._errors(uri):
                old = [item["Key"] for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix) for item in page.get("Contents", [])]
                old_markers = [key for key in old if key.rsplit("/", 1)[-1] == SUCCESS_MARKER]
                for key in old_markers:
                    self.client.delete_object(Bucket=bucket, Key=key)
                for path in files:
                    self.client.upload_file(str(path), bucket, prefix + path.relative_to(staging).as_posix())
                stale = set(old) - set(old_markers) - {prefix + p.relative_to(staging).as_posix() for p in files}
                for key in sorted(stale):
                    self.client.delete_object(Bucket=bucket, Key=key)
                for marked in markers:
                    self.client.put_object(Bucket=bucket, Key=prefix + (f"{marked}/" if marked else "") + SUCCESS_MARKER, Body=b"")
