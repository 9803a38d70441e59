"""A real S3 protocol server on loopback for the tests: moto's ThreadedMotoServer on 127.0.0.1.

The tests start it themselves (port 0, so any free port), so `make test` and CI need nothing
else. Credentials are dummies, set in the environment for the duration of the fixture only;
the AWS config and credentials files are pointed at /dev/null so no real profile is ever read.

Use it from a test module with

    from tqc_dagster_tests.s3_server import s3_server  # noqa: F401  (the module-scoped fixture)

moto keeps its state per process, not per server: the fixture resets it when it starts, and
tests keep apart by using their own bucket names (`server.new_bucket()`).

Denied access is real: `server.iam_user(name, statements)` makes an IAM user with an inline
policy and returns its keys, and inside `server.enforcing_iam()` moto checks every request
against IAM (its INITIAL_NO_AUTH_ACTION_COUNT set to 0 through /moto-api/reset-auth; switched
back off on exit, as the setting is process-wide).
"""

from __future__ import annotations

import json
import logging
import os
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import pytest

REGION = "us-east-1"
DUMMY_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
}
UNSET_ENV = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3")


def dummy_credentials(patch: pytest.MonkeyPatch) -> None:
    """Dummy keys only; nothing from the machine's AWS profile, metadata service or environment."""
    for name in UNSET_ENV:
        patch.delenv(name, raising=False)
    for name, value in DUMMY_ENV.items():
        patch.setenv(name, value)


class _Paths(list):
    """A loader's search paths: boto3 appends its own data path once per session; keep one copy."""

    def append(self, path) -> None:
        if path not in self:
            super().append(path)


def share_botocore_loader(patch: pytest.MonkeyPatch) -> None:
    """One botocore data loader for every new session, for speed only.

    The package makes a boto3 client per store, and dagster-aws a new session per client: each
    re-reads megabytes of botocore's JSON service models (~0.2 s a client, most of an S3 test's time).
    Sharing the loader is what clients of one session do anyway; its caches hold read-only files.
    """
    import botocore.loaders
    import botocore.session

    loaders: dict = {}

    def create_loader(search_path_string=None):
        if search_path_string not in loaders:
            loader = botocore.loaders.create_loader(search_path_string)
            loader._search_paths = _Paths(loader.search_paths)
            loaders[search_path_string] = loader
        return loaders[search_path_string]

    patch.setattr(botocore.session, "create_loader", create_loader)


@dataclass
class S3Server:
    url: str
    _server: object = field(repr=False)

    def client(self, service: str = "s3", access_key: tuple[str, str] | None = None):
        keys = {"aws_access_key_id": access_key[0], "aws_secret_access_key": access_key[1]} if access_key else {}
        return boto3.client(service, endpoint_url=self.url, region_name=REGION, **keys)

    def resource(self):
        """The dagster-aws S3Resource the pipeline uses, pointed at this server."""
        from dagster_aws.s3 import S3Resource

        return S3Resource(endpoint_url=self.url, region_name=REGION)

    def new_bucket(self, stem: str = "tqc") -> str:
        name = f"{stem}-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def upload_tree(self, folder: Path, bucket: str, prefix: str) -> list[str]:
        """Every file under `folder` as `prefix/<relative path>`; returns the keys."""
        client = self.client()
        keys = []
        for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
            key = f"{prefix.rstrip('/')}/{path.relative_to(folder).as_posix()}" if prefix else path.relative_to(folder).as_posix()
            client.upload_file(str(path), bucket, key)
            keys.append(key)
        return keys

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    def read(self, bucket: str, key: str) -> bytes:
        return self.client().get_object(Bucket=bucket, Key=key)["Body"].read()

    def _post(self, path: str, body: bytes = b"") -> None:
        request = urllib.request.Request(f"{self.url}/moto-api/{path}", data=body, method="POST", headers={"Content-Type": "text/plain"})
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    @contextmanager
    def recording(self) -> Iterator[list[dict]]:
        """The requests the server receives inside the block (moto's recorder): method, url, headers, ..."""
        requests: list[dict] = []
        self._post("recorder/reset-recording")
        self._post("recorder/start-recording")
        try:
            yield requests
        finally:
            self._post("recorder/stop-recording")
            with urllib.request.urlopen(f"{self.url}/moto-api/recorder/download-recording", timeout=10) as response:
                requests.extend(json.loads(line) for line in response.read().decode().splitlines() if line.strip())

    def reset(self) -> None:
        """Forget every bucket, object and IAM user (moto's state is per process)."""
        self._post("reset")

    def iam_user(self, name: str, statements: list[dict]) -> tuple[str, str]:
        """An IAM user with an inline policy of `statements`; returns its (access key id, secret)."""
        iam = self.client("iam")
        iam.create_user(UserName=name)
        policy = {"Version": "2012-10-17", "Statement": statements}
        iam.put_user_policy(UserName=name, PolicyName=f"{name}-policy", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return key["AccessKeyId"], key["SecretAccessKey"]

    @contextmanager
    def enforcing_iam(self) -> Iterator[None]:
        """Make the server check every request against IAM (moto's INITIAL_NO_AUTH_ACTION_COUNT = 0).

        Inside, only keys of IAM users made with `iam_user` work; the dummy keys get
        InvalidAccessKeyId. The setting is process-wide in moto, so it is switched back off on exit.
        """
        self._post("reset-auth", b"0")
        try:
            yield
        finally:
            self._post("reset-auth", b"inf")


@contextmanager
def running_s3_server() -> Iterator[S3Server]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one INFO line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        s3 = S3Server(f"http://{host}:{port}", server)
        s3.reset()
        yield s3
    finally:
        server.stop()


@pytest.fixture(scope="module")
def s3_server() -> Iterator[S3Server]:
    """One moto server per test module, with dummy credentials in the environment while it runs."""
    with pytest.MonkeyPatch.context() as patch:
        dummy_credentials(patch)
        share_botocore_loader(patch)
        with running_s3_server() as server:
            yield server
