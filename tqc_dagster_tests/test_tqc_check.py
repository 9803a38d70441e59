"""`tqc check`: the asset checks on what is stored, without materializing, as a CI gate."""

from __future__ import annotations

import dagster as dg
import polars as pl
from click.testing import CliRunner

from tqc_dagster.cli import main
from tqc_dagster.config import load_config
from tqc_dagster.resources.storage import asset_path
from tqc_dagster_tests.conftest import write_config


def tqc(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_tqc_check_passes_on_a_good_lake_and_fails_naming_the_check_on_a_corrupted_one(full_run, tmp_path, monkeypatch):
    config_path = str(full_run.copy(tmp_path / "project"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "project" / "dagster_home"))  # the copy's instance
    monkeypatch.delenv("TQC_CONFIG", raising=False)
    config = load_config(config_path)
    with dg.DagsterInstance.get() as instance:
        materializations = instance.get_event_records(dg.EventRecordsFilter(dg.DagsterEventType.ASSET_MATERIALIZATION))

    good = tqc("check", "--config", config_path, "--judge-version", "v1")
    assert good.exit_code == 0, good.output
    assert "0 failed" in good.output

    # A leaked title (a test row copied into the trainset) and a lost sample (a wrong count).
    trainset, testset, processed = (asset_path(config.storage_root, asset, "v1", "model_a") for asset in ("trainset", "testset", "processed_samples"))
    pl.concat([pl.read_parquet(trainset), pl.read_parquet(testset).head(1)]).write_parquet(trainset)
    pl.read_parquet(processed).slice(1).write_parquet(processed)
    bad = tqc("check", "--config", config_path, "--judge-version", "v1")
    assert bad.exit_code == 1
    assert "FAILED (failed checks: processed_samples:accounting)" in bad.output
    assert "1 lines are neither a sample, a quarantined row nor a duplicate" in bad.output
    assert "testset:no_source_on_both_sides" in bad.output and "normalized source titles are in train and test" in bad.output
    assert "exports:no_source_on_both_sides" in bad.output  # the published exports are checked against the stored splits
    with dg.DagsterInstance.get() as instance:  # nothing was materialized by checking
        assert len(instance.get_event_records(dg.EventRecordsFilter(dg.DagsterEventType.ASSET_MATERIALIZATION))) == len(materializations)


def test_tqc_check_fails_when_nothing_is_stored(demo_dir, tmp_path, isolated_env):
    result = tqc("check", "--config", str(write_config(tmp_path / "project", demo_dir)), "--partition", "v1|model_a")
    assert result.exit_code == 1
    assert "raw_judgments partition v1|model_a is not materialized yet" in result.output
