"""The code location's definitions are built lazily from the config the user chose.

Importing `tqc_dagster.definitions` reads no config; Dagster (the code server, `dg check defs`) calls the
`@dg.definitions` function `defs`, which reads `TQC_CONFIG`, else tqc.yaml in the current folder. So
`tqc run --config` wins over whatever `TQC_CONFIG` names. The command-line checks run in child processes,
where the definitions module is imported afresh, as a user's `tqc` or `dg` does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import tqc_dagster
from tqc_dagster.config import ConfigError, project_config
from tqc_dagster_tests.conftest import write_config

REPO_ROOT = Path(tqc_dagster.__file__).resolve().parents[1]
ALL_ASSETS = {
    "judge_records", "raw_judgments", "processed_samples", "quarantined_judgments", "synthetic_samples",
    "trainset", "testset", "balanced_trainset", "judge_agreement", "exports",
}
CHILD_TIMEOUT_S = 600  # a cold child (no bytecode) on a busy 2-core machine


def broken_config(folder: Path) -> Path:
    path = folder / "broken.yaml"
    path.write_text("storage_root: [unclosed\n")
    return path


def child_env(**overrides: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "DAGSTER_DISABLE_TELEMETRY": "1", **overrides}
    for name in ("PYTEST_CURRENT_TEST", "PYTEST_ADDOPTS"):
        env.pop(name, None)
    return env


def run_child(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(args, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=CHILD_TIMEOUT_S)


def test_importing_the_definitions_reads_no_config(tmp_path):
    env = child_env(TQC_CONFIG=str(broken_config(tmp_path)))
    code = "import sys, tqc_dagster.definitions; assert 'matplotlib' not in sys.modules, 'matplotlib imported eagerly'"
    result = run_child([sys.executable, "-c", code], env, cwd=tmp_path)
    assert result.returncode == 0, result.stdout


def test_tqc_run_config_wins_over_a_broken_tqc_config(demo_dir, tmp_path, isolated_env):
    good = write_config(tmp_path / "project", demo_dir)
    env = child_env(TQC_CONFIG=str(broken_config(tmp_path)))
    result = run_child(
        [sys.executable, "-c", "from tqc_dagster.cli import main; main()", "run", "--config", str(good), "--select", "judge_records", "--partition", "v1|model_a"],
        env,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout
    assert "broken.yaml" not in result.stdout, result.stdout
    assert (good.parent / "lake" / "judge_records" / "v1.parquet").exists(), result.stdout


def test_dg_check_defs_passes(demo_dir, tmp_path, isolated_env):
    """`dg check defs` from the project root (which has a valid tqc.yaml), on a generated config named by TQC_CONFIG."""
    dg = Path(sys.executable).with_name("dg")
    if not dg.exists():
        pytest.fail(f"{dg} is missing: install the test extra (`make install`, dagster-dg-cli is in requirements.lock)")
    config = write_config(tmp_path / "project", demo_dir)
    # The instance dg validates with: the project's settings (telemetry off) in the test's DAGSTER_HOME.
    home = Path(os.environ["DAGSTER_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO_ROOT / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    # VIRTUAL_ENV: dg compares the active venv with the project's .venv and warns when they differ.
    env = child_env(TQC_CONFIG=str(config), VIRTUAL_ENV=sys.prefix)
    result = run_child([str(dg), "check", "defs"], env, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stdout
    assert "All definitions loaded successfully" in result.stdout, result.stdout


def test_the_lazy_definitions_load_every_asset_as_the_code_server_loads_them(demo_dir, tmp_path, monkeypatch):
    from dagster._core.definitions.reconstruct import repository_def_from_target_def
    from dagster._core.workspace.autodiscovery import loadable_targets_from_python_module

    raw = demo_dir / "raw" / "translation_eval_cot"
    inputs = {"judge_model": "anthropic.claude-3-5-sonnet-20241022-v2:0", "input": f"{raw}/c35-v2/*/*/*.jsonl.out"}
    # A third judge version shows that the config named when Dagster loads the location is the one used.
    config = write_config(tmp_path, demo_dir, judge_versions={"v1": inputs, "v2": inputs, "v3": inputs})
    monkeypatch.setenv("TQC_CONFIG", str(config))

    (target,) = loadable_targets_from_python_module("tqc_dagster.definitions", working_directory=None)
    assert target.attribute == "defs"
    repository = repository_def_from_target_def(target.target_definition)
    assert {key.to_user_string() for key in repository.asset_graph.get_all_asset_keys()} == ALL_ASSETS
    assert repository.get_job("ingest").partitions_def.get_partition_keys() == ["v1", "v2", "v3"]


def test_the_default_config_is_tqc_yaml_in_the_current_folder(demo_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("TQC_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"tqc\.yaml: config file not found \(no config named and TQC_CONFIG unset"):
        project_config()
    config = write_config(tmp_path, demo_dir)
    assert project_config().config_path == str(config.resolve())
