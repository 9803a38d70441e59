"""Guard rails across runs: a failed blocking check stops what follows its partition in `tqc run` and in
the automation sensor's evaluation, and the other partitions go on; exports that fail verification are
never published."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from click.testing import CliRunner

from tqc_dagster.cli import main
from tqc_dagster.config import load_config
from tqc_dagster.definitions import build_definitions
from tqc_dagster.resources.storage import asset_path
from tqc_dagster_tests.conftest import write_config
from tqc_dagster_tests.records import judge_record, write_records

DOWNSTREAM = ["synthetic_samples", "trainset", "testset", "balanced_trainset"]
INGEST = "judge_records,raw_judgments,processed_samples,quarantined_judgments"


def tqc(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def noisy_copy(demo_dir: Path, folder: Path) -> Path:
    """The demo batch outputs, with v2 doubled in size by Bedrock error records (v2 then quarantines over half)."""
    copy = folder / "demo"
    shutil.copytree(demo_dir, copy)
    lines = json.loads((demo_dir / "demo_summary.json").read_text())["judge_versions"]["v2"]["lines"]
    errors = [judge_record(f"meta_Noise_{i}_0", error={"errorCode": 400, "errorMessage": "Malformed input request"}) for i in range(lines)]
    write_records(copy / "raw" / "translation_eval_cot" / "c37" / "noise-job" / "part" / "noise.jsonl.out", errors)
    return copy


@pytest.fixture
def strict_project(demo_dir, tmp_path, isolated_env) -> Path:
    """v1 is the demo (well under 30 % quarantined), v2 quarantines over half: its quarantine_rate check fails."""
    return write_config(tmp_path / "project", noisy_copy(demo_dir, tmp_path), checks={"max_quarantine_rate": 0.3})


def test_tqc_run_skips_exactly_what_follows_the_partitions_whose_blocking_check_failed(strict_project):
    result = tqc("run", "--config", str(strict_project))
    assert result.exit_code == 1, result.output
    config = load_config(strict_project)
    lake = Path(config.storage_root)
    for model in ("model_a", "model_b"):
        assert f"judgments v2|{model}" in result.output and "FAILED (failed checks: processed_samples:quarantine_rate)" in result.output
        assert f"synthesis v2|{model}" in result.output
        for asset in DOWNSTREAM:
            assert not Path(asset_path(config.storage_root, asset, "v2", model)).exists(), asset
            assert Path(asset_path(config.storage_root, asset, "v1", model)).exists(), asset
        assert f"agreement {model}" in result.output  # compares v1 with v2: skipped too
        assert not (lake / "judge_agreement" / f"{model}.parquet").exists()
    assert not list(lake.glob("exports/v2/*/_SUCCESS"))
    assert sorted(path.parent.name for path in lake.glob("exports/v1/*/_SUCCESS")) == ["complex", "simple"]
    skipped = [line for line in result.output.splitlines() if " skipped: " in line]
    assert len(skipped) == 2 + 2 + 2 + 1  # synthesis and splits of both v2 partitions, agreement of both models, exports v2
    assert all("v2|model_" in line and "quarantine_rate" in line for line in skipped)
    assert "above checks.max_quarantine_rate" in result.output  # the check's own explanation, once per failed run
    assert "Traceback" not in result.output


def test_a_rerun_after_a_failed_check_marks_what_it_did_not_make_as_stale(demo_dir, tmp_path, isolated_env):
    demo = noisy_copy(demo_dir, tmp_path)
    lenient = write_config(tmp_path / "project", demo, checks={"max_quarantine_rate": 0.9})
    assert tqc("run", "--config", str(lenient), "--judge-version", "v2").exit_code == 0
    published = {path: path.read_bytes() for path in (tmp_path / "project" / "lake" / "exports" / "v2").rglob("*") if path.is_file()}

    strict = write_config(tmp_path / "project", demo, checks={"max_quarantine_rate": 0.3})
    result = tqc("run", "--config", str(strict), "--judge-version", "v2")
    assert result.exit_code == 1
    # The previous verified exports stay, and the summary says they are not this run's.
    assert {path: path.read_bytes() for path in published} == published
    assert "earlier*" in result.output and "* stale" in result.output
    rows = next(line for line in result.output.splitlines() if "synthetic_samples" in line)
    assert rows.count("*") == 2  # both v2 partitions: stored by the first run, not refreshed


def test_automation_does_not_follow_a_partition_whose_blocking_check_failed(strict_project, isolated_env):
    defs = build_definitions(load_config(strict_project))
    (isolated_env / "dagster_home").mkdir()
    with dg.DagsterInstance.get() as instance:
        before = dg.evaluate_automation_conditions(defs=defs, instance=instance)
        assert tqc("run", "--config", str(strict_project), "--select", INGEST).exit_code == 1
        evaluation = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=before.cursor)
    requested = {key.to_user_string(): evaluation.get_requested_partitions(key) for key in defs.resolve_asset_graph().get_all_asset_keys()}
    # v1 passed its checks: what follows its samples is requested; v2 failed quarantine_rate: nothing of it is.
    assert {asset: partitions for asset, partitions in requested.items() if partitions} == {"synthetic_samples": {"v1|model_a", "v1|model_b"}}


def test_a_run_on_a_blocked_partition_fails_at_loading_and_says_why(strict_project):
    """Whatever launches it (UI, backfill, a job): the IO manager refuses an input whose blocking check failed."""
    assert tqc("run", "--config", str(strict_project), "--partition", "v2|model_a", "--select", INGEST).exit_code == 1
    defs = build_definitions(load_config(strict_project))
    with dg.DagsterInstance.get() as instance:
        result = defs.resolve_job_def("synthesis").execute_in_process(partition_key="v2|model_a", instance=instance, raise_on_error=False)
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data
    assert "processed_samples v2|model_a failed its check quarantine_rate" in failure.user_failure_data.description
    assert not Path(asset_path(load_config(strict_project).storage_root, "synthetic_samples", "v2", "model_a")).exists()


def test_exports_that_fail_verification_are_not_published_and_the_previous_ones_stay(full_run, tmp_path, monkeypatch):
    config_path = full_run.copy(tmp_path / "project")
    monkeypatch.setenv("DAGSTER_HOME", str(config_path.parent / "dagster_home"))  # the copy's instance
    config = load_config(config_path)
    folder = Path(config.storage_root) / "exports" / "v1"
    published = {path: path.read_bytes() for path in folder.rglob("*") if path.is_file()}

    # A bug upstream: a test title slips into the balanced trainset (and the trainset) of v1|model_a.
    test_rows = pl.read_parquet(asset_path(config.storage_root, "testset", "v1", "model_a")).head(1)
    for asset in ("trainset", "balanced_trainset"):
        path = asset_path(config.storage_root, asset, "v1", "model_a")
        pl.concat([pl.read_parquet(path), test_rows]).write_parquet(path)
    result = tqc("run", "--config", str(config_path), "--judge-version", "v1", "--select", "exports")
    assert result.exit_code == 1
    assert "exports:no_source_on_both_sides" in result.output and "normalized source titles are in train and test" in result.output
    assert {path: path.read_bytes() for path in folder.rglob("*") if path.is_file()} == published
    assert not [path for path in folder.parent.iterdir() if path.name.startswith(".")]  # no staging left behind


LOCAL_RUN_AUDITED = """
import json, sys
connections = []
sys.addaudithook(lambda event, args: connections.append(repr(args[1])) if event == "socket.connect" else None)
from tqc_dagster.cli import main
try:
    main(["run", "--config", sys.argv[1], "--judge-version", "v1"], standalone_mode=False)
finally:
    aws = sorted(name for name in sys.modules if name.split(".")[0] in ("dagster_aws", "boto3", "botocore", "s3transfer"))
    print(json.dumps({"aws_modules": aws, "connections": connections}))
"""


def test_a_local_only_run_touches_no_aws(demo_dir, tmp_path, isolated_env):
    """Local storage and the rules backend: no AWS library is imported, no socket is opened (no credential
    chain, no instance-metadata lookups)."""
    config_path = write_config(tmp_path / "project", demo_dir)
    child = subprocess.run([sys.executable, "-c", LOCAL_RUN_AUDITED, str(config_path)], capture_output=True, text=True, timeout=600)
    assert child.returncode == 0, child.stderr[-3000:]
    audit = json.loads(child.stdout.strip().splitlines()[-1])
    assert audit == {"aws_modules": [], "connections": []}
