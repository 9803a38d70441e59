"""The input sensors (tqc_dagster/sensors.py): one per judge version, on local folders and on S3 (moto).

Each requests only its own judge version's ingest partition, only for finished files (a job
manifest present, or size and version unchanged across two ticks), once per change.

A sensor tick is evaluated the way the daemon does it: `evaluate_tick` on a sensor context with the
instance, the previous cursor and the `s3` resource of the Definitions built from the config. The
cursor a tick returns is what Dagster stores; a "restart" builds new Definitions from the config
file and a new instance and goes on from that stored cursor string alone.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import dagster as dg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tqc_dagster.config import load_config
from tqc_dagster.definitions import build_definitions
from tqc_dagster.sensors import evaluate
from tqc_dagster.stores import FileState, parent
from tqc_dagster_tests.conftest import write_config
from tqc_dagster_tests.s3_server import REGION, dummy_credentials, s3_server, share_botocore_loader  # noqa: F401  (module-scoped fixture)

# A change requests the judge version's partition of judge_records (job `ingest`, read once for both
# models); raw_judgments of both models and everything after follow through eager automation.
V1 = {"v1"}
V2 = {"v2"}
JOB_NAME = "ingest"
FOLDERS = {"v1": "translation_eval_cot/c35-v2", "v2": "translation_eval_cot/c37"}
JOB = "pq3dn8zw831v/20250203T162701Z"


@pytest.fixture(scope="module", autouse=True)
def aws_sandbox():
    """Dummy credentials for the local sensors too (their `s3` resource makes a client), and quick clients."""
    with pytest.MonkeyPatch.context() as patch:
        dummy_credentials(patch)
        share_botocore_loader(patch)
        yield


def line(record: int) -> str:
    return json.dumps({"recordId": f"r{record:06d}", "modelInput": {}, "modelOutput": {}}) + "\n"


class LocalLake:
    def __init__(self, root: Path):
        self.root = root
        self.base = str(root)

    def write(self, relative: str, text: str) -> None:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        before = path.stat().st_mtime_ns if path.exists() else None
        path.write_text(text)
        if path.stat().st_mtime_ns == before:  # a coarse file-system clock: a rewrite must still look new
            os.utime(path, ns=(before + 1_000_000, before + 1_000_000))

    def delete(self, relative: str) -> None:
        (self.root / relative).unlink()

    def config(self) -> dict:
        return {}


class S3Lake:
    def __init__(self, server, bucket: str):
        self.server, self.bucket = server, bucket
        self.base = f"s3://{bucket}/batch-inference-output"

    def write(self, relative: str, text: str) -> None:
        self.server.client().put_object(Bucket=self.bucket, Key=f"batch-inference-output/{relative}", Body=text.encode())

    def delete(self, relative: str) -> None:
        self.server.client().delete_object(Bucket=self.bucket, Key=f"batch-inference-output/{relative}")

    def config(self) -> dict:
        return {"s3": {"endpoint_url": self.server.url, "region": REGION}}


class Sensors:
    """The sensors of the Definitions built from a config file, with the cursors Dagster would store."""

    def __init__(self, config_path: Path, cursors: dict[str, str | None] | None = None):
        self.defs = build_definitions(load_config(config_path))
        self.instance = dg.DagsterInstance.ephemeral()  # a fresh process's instance; the cursor is all that carries over
        self.cursors = dict(cursors or {})
        self.run_keys: list[str] = []
        self.skips: dict[str, str | None] = {}

    def tick(self, judge_version: str) -> set[str]:
        sensor = self.defs.resolve_sensor_def(f"batch_outputs_{judge_version}")
        context = dg.build_sensor_context(
            instance=self.instance,
            cursor=self.cursors.get(judge_version),
            definitions=self.defs,
        )
        result = sensor.evaluate_tick(context)
        if result.cursor is not None:
            self.cursors[judge_version] = result.cursor
        self.skips[judge_version] = result.skip_message
        self.run_keys += [request.run_key for request in result.run_requests]
        assert all(request.job_name in (None, JOB_NAME) for request in result.run_requests)
        assert sensor.job_name == JOB_NAME
        return {str(request.partition_key) for request in result.run_requests}

    def ticks(self) -> dict[str, set[str]]:
        return {judge_version: self.tick(judge_version) for judge_version in ("v1", "v2")}


def nothing() -> dict[str, set[str]]:
    return {"v1": set(), "v2": set()}


@pytest.fixture(params=["local", "s3"])
def lake(request, tmp_path):
    if request.param == "local":
        return LocalLake(tmp_path / "raw")
    server = request.getfixturevalue("s3_server")
    return S3Lake(server, server.new_bucket("sensor"))


def config_for(lake, folder: Path) -> Path:
    inputs = {
        "v1": {"judge_model": "anthropic.claude-3-5-sonnet-20241022-v2:0", "input": f"{lake.base}/{FOLDERS['v1']}/*/*/*.jsonl.out"},
        "v2": {"judge_model": "us.anthropic.claude-3-7-sonnet-20250219-v1:0", "input": f"{lake.base}/{FOLDERS['v2']}/*/*/*.jsonl.out"},
    }
    return write_config(folder, folder, judge_versions=inputs, **lake.config())


def finished_job(lake, judge_version: str, job: str = JOB, files: tuple[str, ...] = ("meta_All_Beauty", "meta_Electronics")) -> None:
    for number, name in enumerate(files):
        lake.write(f"{FOLDERS[judge_version]}/{job}/{name}.jsonl.out", line(number))
    lake.write(f"{FOLDERS[judge_version]}/{job}/manifest.json.out", json.dumps({"totalRecordCount": len(files)}))


@pytest.fixture
def started(lake, tmp_path):
    """Finished v1 and v2 jobs (manifests present), and sensors that have seen them once."""
    finished_job(lake, "v1")
    finished_job(lake, "v2")
    config_path = config_for(lake, tmp_path / "project")
    sensors = Sensors(config_path)
    first = sensors.ticks()
    return lake, config_path, sensors, first


def test_the_first_tick_requests_both_model_partitions_of_its_judge_version_then_nothing(started):
    lake, _, sensors, first = started
    assert first == {"v1": V1, "v2": V2}
    assert sensors.ticks() == nothing()
    assert sensors.ticks() == nothing()
    assert sensors.skips["v1"] == f"no finished change under {lake.base}/{FOLDERS['v1']}/*/*/*.jsonl.out"


def test_only_the_judge_version_with_files_is_requested(lake, tmp_path):
    finished_job(lake, "v1")
    sensors = Sensors(config_for(lake, tmp_path / "project"))
    assert sensors.ticks() == {"v1": V1, "v2": set()}
    assert sensors.ticks() == nothing()


def test_a_rewritten_file_is_requested_again_and_v2_is_not_affected(started):
    lake, _, sensors, _ = started
    lake.write(f"{FOLDERS['v1']}/{JOB}/meta_Electronics.jsonl.out", line(1) + line(2))
    assert sensors.ticks() == {"v1": V1, "v2": set()}
    assert sensors.ticks() == nothing()
    assert len(set(sensors.run_keys)) == len(sensors.run_keys) == 3 * len(V1)


def test_a_new_job_folder_without_manifest_is_requested_once_its_files_are_stable(started):
    lake, _, sensors, _ = started
    job = "e1ppbho93b7c/20250315T195015Z"
    relative = f"{FOLDERS['v1']}/{job}/retry_failed_and_sampled.jsonl.out"
    lake.write(relative, line(1))
    assert sensors.ticks() == nothing()  # first seen: it may still be written
    lake.write(relative, line(1) + line(2))
    assert sensors.ticks() == nothing()  # it grew since the last tick
    lake.write(relative, line(1) + line(3))
    assert sensors.ticks() == nothing()  # same size, new version: still being written
    assert sensors.ticks() == {"v1": V1, "v2": set()}  # unchanged across two ticks
    assert sensors.ticks() == nothing()
    lake.write(f"{FOLDERS['v1']}/{job}/manifest.json.out", json.dumps({"totalRecordCount": 2}))
    assert sensors.ticks() == nothing()  # the manifest adds no change to an already requested file


def test_a_file_in_a_folder_with_a_manifest_is_requested_on_the_tick_it_appears(started):
    lake, _, sensors, _ = started
    finished_job(lake, "v1", job="xuzuzxwx8gtg/20250205T203945Z", files=("retry_failed_and_sampled",))
    assert sensors.ticks() == {"v1": V1, "v2": set()}
    assert sensors.ticks() == nothing()


def test_a_deleted_file_is_requested(started):
    lake, _, sensors, _ = started
    lake.delete(f"{FOLDERS['v1']}/{JOB}/meta_Electronics.jsonl.out")
    assert sensors.ticks() == {"v1": V1, "v2": set()}
    assert sensors.ticks() == nothing()
    lake.delete(f"{FOLDERS['v1']}/{JOB}/meta_All_Beauty.jsonl.out")  # the last file of v1
    assert sensors.ticks() == {"v1": V1, "v2": set()}
    assert sensors.ticks() == nothing()


def test_a_restart_from_the_stored_cursor_requests_nothing_new_and_catches_up(started):
    lake, config_path, sensors, _ = started
    stored = json.loads(json.dumps(sensors.cursors))  # what Dagster keeps: strings only
    restarted = Sensors(config_path, stored)
    assert restarted.ticks() == nothing()
    lake.write(f"{FOLDERS['v2']}/{JOB}/meta_All_Beauty.jsonl.out", line(7) + line(8))  # changed while down
    again = Sensors(config_path, json.loads(json.dumps(restarted.cursors)))
    assert again.ticks() == {"v1": set(), "v2": V2}
    assert again.ticks() == nothing()


def test_run_keys_are_never_reused(started):
    lake, _, sensors, _ = started
    relative = f"{FOLDERS['v1']}/{JOB}/meta_Electronics.jsonl.out"
    for _ in range(2):
        lake.delete(relative)
        assert sensors.tick("v1") == V1
        lake.write(relative, line(1))
        assert sensors.tick("v1") == V1
    assert len(set(sensors.run_keys)) == len(sensors.run_keys), sensors.run_keys


def test_an_s3_sensor_skips_naming_the_uri_when_the_bucket_is_missing(s3_server, tmp_path):
    lake = S3Lake(s3_server, f"no-such-bucket-{uuid.uuid4().hex[:8]}")
    sensors = Sensors(config_for(lake, tmp_path / "project"))
    assert sensors.ticks() == nothing()
    pattern = f"{lake.base}/{FOLDERS['v1']}/*/*/*.jsonl.out"
    assert sensors.skips["v1"] == f"{pattern}: the S3 bucket '{lake.bucket}' does not exist"


def test_an_s3_sensor_skips_naming_the_uri_when_access_is_denied(s3_server, tmp_path, monkeypatch):
    lake = S3Lake(s3_server, s3_server.new_bucket("sensor"))
    finished_job(lake, "v1")
    sensors = Sensors(config_for(lake, tmp_path / "project"))
    denied = s3_server.iam_user(f"sensor-denied-{uuid.uuid4().hex[:6]}", [{"Effect": "Deny", "Action": "s3:*", "Resource": "*"}])
    with monkeypatch.context() as patch:
        patch.setenv("AWS_ACCESS_KEY_ID", denied[0])
        patch.setenv("AWS_SECRET_ACCESS_KEY", denied[1])
        with s3_server.enforcing_iam():
            assert sensors.tick("v1") == set()
    assert sensors.skips["v1"].startswith(f"{lake.base}/{FOLDERS['v1']}/*/*/*.jsonl.out: access denied (AccessDenied)")
    assert sensors.tick("v1") == V1  # the denied tick did not lose the files: requested once access is back


# ---- the pure tick rule -------------------------------------------------------------------------

URIS = [
    "s3://lake/c35-v2/job1/run/a.jsonl.out",
    "s3://lake/c35-v2/job1/run/b.jsonl.out",
    "s3://lake/c35-v2/job2/run/c.jsonl.out",
    "/data/c35-v2/job3/run/d.jsonl.out",
]
JOB_FOLDERS = sorted({parent(uri) for uri in URIS})
observations = st.tuples(
    st.dictionaries(st.sampled_from(URIS), st.builds(FileState, st.integers(0, 2), st.sampled_from(["v1", "v2", "v3"]))),
    st.sets(st.sampled_from(JOB_FOLDERS)),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(observations, min_size=1, max_size=8))
def test_evaluate_never_requests_a_file_that_changed_since_the_last_tick_unless_its_job_has_a_manifest(ticks):
    seen: dict[str, FileState] = {}
    requested: dict[str, FileState] = {}
    for current, finished_folders in ticks:
        changed, new_requested = evaluate(seen, requested, current, finished_folders)
        assert len(changed) == len(set(changed))
        for uri in changed:
            if uri in current:
                assert parent(uri) in finished_folders or seen.get(uri) == current[uri], "requested while still changing"
                assert requested.get(uri) != current[uri], "requested though already requested in this state"
            else:
                assert uri in requested, "a file never requested cannot be reported gone"
        for uri, state in current.items():
            finished = parent(uri) in finished_folders or seen.get(uri) == state
            if finished:
                assert new_requested[uri] == state
                if requested.get(uri) != state:
                    assert uri in changed, "a finished change was missed"
            else:
                assert new_requested.get(uri) == requested.get(uri), "an unfinished file moved the requested state"
        assert {uri for uri in requested if uri not in current} <= set(changed), "a gone file was missed"
        assert set(new_requested) <= set(current)
        seen, requested = current, new_requested

    # the same observation on two more ticks: everything is finished, then nothing is left to request
    current, finished_folders = ticks[-1]
    _, requested = evaluate(seen, requested, current, finished_folders)
    changed, final = evaluate(current, requested, current, finished_folders)
    assert changed == [] and final == current
