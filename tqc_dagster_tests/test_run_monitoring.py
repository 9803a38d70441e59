"""Runs that die release what they hold; SIGTERM stops `tqc run` cleanly.

A real `tqc run` process synthesizes through the bedrock backend against the fake Converse
endpoint, which holds every request: the process is then known to be inside synthetic_samples,
holding the `bedrock` pool slot, when the test kills or signals it. Waits are bounded only so
that a regression fails instead of hanging; no verdict depends on timing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
import pytest

from tqc_dagster.config import load_config
from tqc_dagster.resources.storage import asset_path
from tqc_dagster.run_monitoring import PID_TAG, process_start, this_process_tags, worker_health
from tqc_dagster_tests.bedrock_helpers import use_dummy_aws
from tqc_dagster_tests.conftest import write_config
from tqc_dagster_tests.fake_bedrock import FakeBedrock

TQC = str(Path(sys.executable).parent / "tqc")
SELECTION = "synthetic_samples"
BOUND_S = 300  # generous: the suite must pass on a loaded 2-core machine
COPIED_AT: list[datetime] = []  # when held_bedrock copied the full run (tells this test's runs from the copied ones)


@pytest.fixture
def held_bedrock(full_run, demo_dir, tmp_path, monkeypatch):
    """(config path, fake endpoint that holds every request until released): a copy of the session's full run
    whose config synthesizes through the bedrock backend, its instance in DAGSTER_HOME."""
    use_dummy_aws(monkeypatch, tmp_path)
    folder = full_run.copy(tmp_path / "project").parent
    COPIED_AT[:] = [datetime.now(timezone.utc)]
    monkeypatch.setenv("DAGSTER_HOME", str(folder / "dagster_home"))
    monkeypatch.delenv("TQC_CONFIG", raising=False)
    with FakeBedrock(hold=True) as fake:
        config_path = write_config(
            folder,
            demo_dir,
            synthesis={"backend": "bedrock", "min_samples": 5, "samples_per_request": 5},
            bedrock={"endpoint_url": fake.url, "requests_per_minute": 6000, "tokens_per_minute": 50_000_000, "max_workers": 4},
        )
        yield config_path, fake


def tqc_run(config_path: Path) -> list[str]:
    return [TQC, "run", "--config", str(config_path), "--partition", "v1|model_a", "--select", SELECTION]


def start_tqc_run(config_path: Path) -> subprocess.Popen:
    return subprocess.Popen(tqc_run(config_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def synthesis_runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    """The synthesis runs of this test: the copied instance also holds the full run's, made before it was copied."""
    return [record.dagster_run for record in instance.get_run_records(filters=dg.RunsFilter(job_name="synthesis", created_after=COPIED_AT[0]))]


def test_a_killed_run_is_marked_failed_and_its_pool_slot_freed_before_the_next_run(held_bedrock):
    config_path, fake = held_bedrock
    process = start_tqc_run(config_path)
    assert fake.arrived.wait(BOUND_S), process.communicate()[0] if process.poll() is not None else "no request reached Bedrock"
    process.kill()
    process.communicate(timeout=BOUND_S)
    fake.release.set()  # from now on the fake answers
    with dg.DagsterInstance.get() as instance:
        (dead,) = synthesis_runs(instance)
        assert dead.status == dg.DagsterRunStatus.STARTED and worker_health(dead).status.value == "FAILED"
        assert [slot.run_id for slot in instance.event_log_storage.get_concurrency_info("bedrock").claimed_slots] == [dead.run_id]

    rerun = subprocess.run(tqc_run(config_path), capture_output=True, text=True, timeout=BOUND_S)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert f"run {dead.run_id}: its process is gone" in rerun.stdout
    with dg.DagsterInstance.get() as instance:
        assert instance.get_run_by_id(dead.run_id).status == dg.DagsterRunStatus.FAILURE
        assert instance.event_log_storage.get_concurrency_info("bedrock").claimed_slots == []
        assert [run.status for run in synthesis_runs(instance)].count(dg.DagsterRunStatus.SUCCESS) == 1
    assert Path(asset_path(load_config(config_path).storage_root, "synthetic_samples", "v1", "model_a")).exists()


def test_sigterm_cancels_the_run_and_leaves_no_partial_output(held_bedrock):
    config_path, fake = held_bedrock
    stored = Path(asset_path(load_config(config_path).storage_root, "synthetic_samples", "v1", "model_a")).read_bytes()
    process = start_tqc_run(config_path)
    assert fake.arrived.wait(BOUND_S), "no request reached Bedrock"
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=BOUND_S)  # held requests never answer: only the signal ends it
    assert process.returncode == 130, output
    assert "stopped: synthesis v1|model_a: run" in output and "Traceback" not in output
    with dg.DagsterInstance.get() as instance:
        (run,) = synthesis_runs(instance)
        assert run.status == dg.DagsterRunStatus.CANCELED
        assert instance.event_log_storage.get_concurrency_info("bedrock").claimed_slots == []
    lake = Path(load_config(config_path).storage_root)
    assert (lake / "synthetic_samples" / "v1" / "model_a.parquet").read_bytes() == stored
    assert not [path for path in lake.rglob("*") if ".tmp-" in path.name]


def test_a_process_is_recognized_by_pid_and_start_time():
    tags = this_process_tags()
    assert tags[PID_TAG] == str(os.getpid()) and process_start(os.getpid()) == tags["tqc/process_start"]
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert process_start(child.pid) is None  # gone (and reaped)
    recycled = {**tags, "tqc/process_start": "1"}  # the same pid, another process
    assert worker_health(dg.DagsterRun(job_name="j", tags=recycled)).status.value == "FAILED"
    assert worker_health(dg.DagsterRun(job_name="j", tags=tags)).status.value == "RUNNING"
    assert worker_health(dg.DagsterRun(job_name="j", tags={})).status.value == "RUNNING"  # nothing to judge by
