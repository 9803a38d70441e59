"""The real graph, materialized through `tqc run` on a persistent Dagster instance, on generated data."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
import yaml
from click.testing import CliRunner

from tqc_dagster.cli import main
from tqc_dagster.config import load_config
from tqc_dagster.core.judgments import QUARANTINE_REASONS
from tqc_dagster.resources.storage import asset_path
from tqc_dagster.schemas import QuarantinedJudgments, RawJudgments, Samples
from tqc_dagster_tests.conftest import write_config

ASSETS = ["raw_judgments", "processed_samples", "quarantined_judgments"]
SAMPLE_ASSETS = ["synthetic_samples", "trainset", "testset", "balanced_trainset"]
PARTITIONS = ["v1|model_a", "v1|model_b", "v2|model_a", "v2|model_b"]


def tqc(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def project(full_run):
    """The session's full `tqc run` of every asset and partition (read only): the config and the CLI output."""
    return load_config(full_run.config_path), full_run.output


def read(config, asset: str, partition: str) -> pl.DataFrame:
    judge_version, model = partition.split("|")
    return pl.read_parquet(asset_path(config.storage_root, asset, judge_version, model))


def test_run_materializes_every_asset_of_every_partition(project):
    config, output = project
    for asset in ASSETS + SAMPLE_ASSETS:
        for partition in PARTITIONS:
            assert Path(asset_path(config.storage_root, asset, *partition.split("|"))).exists()
    for judge_version in ("v1", "v2"):
        for target_model in ("simple", "complex"):
            folder = Path(config.storage_root) / "exports" / judge_version / target_model
            for name in ("sft/train.jsonl", "sft/test.jsonl", "llamafactory/dataset_info.json", "bedrock/train.jsonl", "grpo/test.parquet", "README.md"):
                assert (folder / name).exists(), folder / name
    for heading in ("rows per asset and partition", "by reason", "export lines per judge version", "judge agreement (weighted kappa", "next:"):
        assert heading in output


def test_every_line_is_a_sample_a_quarantined_row_or_a_duplicate(project, demo_dir):
    config, _ = project
    summary = json.loads((demo_dir / "demo_summary.json").read_text())
    for partition in PARTITIONS:
        raw, samples, quarantined = (read(config, asset, partition) for asset in ASSETS)
        judge_version = partition.split("|")[0]
        assert raw.height == summary["judge_versions"][judge_version]["lines"]
        keyed = raw.filter(pl.col("record_id").is_not_null())
        duplicates = keyed.height - keyed.get_column("record_id").n_unique()
        assert raw.height == samples.height + quarantined.height + duplicates
        assert samples.get_column("record_id").is_unique().all()
        assert samples.height > 0.8 * raw.height


def test_counts_match_the_demo_generators_own_accounting(project, demo_dir):
    """The generator knows which records it broke; the pipeline must find exactly those."""
    config, _ = project
    summary = json.loads((demo_dir / "demo_summary.json").read_text())
    for judge_version in ("v1", "v2"):
        expected = summary["judge_versions"][judge_version]["samples"]
        partitions = [f"{judge_version}|model_a", f"{judge_version}|model_b"]
        assert sum(read(config, "processed_samples", p).height for p in partitions) == expected["valid"]
        assert sum(read(config, "quarantined_judgments", p).height for p in partitions) == expected["quarantined"]


def test_stored_frames_match_their_schemas(project):
    config, _ = project
    for partition in PARTITIONS:
        RawJudgments.validate(read(config, "raw_judgments", partition))
        Samples.validate(read(config, "processed_samples", partition))
        QuarantinedJudgments.validate(read(config, "quarantined_judgments", partition))


def test_demo_faults_are_quarantined_with_their_reasons(project):
    config, _ = project
    reasons = set(
        pl.concat(read(config, "quarantined_judgments", p) for p in PARTITIONS).get_column("reason").unique()
    )
    assert reasons <= set(QUARANTINE_REASONS)
    assert {"unreadable_line", "truncated_output", "missing_translation", "score_out_of_range"} <= reasons


def test_runs_and_check_results_are_recorded_in_the_instance(project):
    config, _ = project
    home = Path(config.config_path).parent / "dagster_home"
    settings = yaml.safe_load((home / "dagster.yaml").read_text())
    assert settings["telemetry"]["enabled"] is False and settings["concurrency"]["pools"]["default_limit"] == 1
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_run_records()
        # ingest and exports per judge version, agreement per model, judgments, synthesis and splits per partition
        assert len(runs) == 2 + 3 * len(PARTITIONS) + 2 + 2
        assert all(record.dagster_run.status == dg.DagsterRunStatus.SUCCESS for record in runs)
        for asset in ASSETS + SAMPLE_ASSETS:
            materialized = instance.get_materialized_partitions(dg.AssetKey(asset))
            assert materialized == set(PARTITIONS)
        check = dg.AssetCheckKey(dg.AssetKey("processed_samples"), "accounting")
        assert instance.event_log_storage.get_asset_check_execution_history(check, limit=10)


def stored_bytes(storage_root: str) -> dict[str, bytes]:
    return {str(path.relative_to(storage_root)): path.read_bytes() for path in sorted(Path(storage_root).rglob("*")) if path.is_file()}


def test_rerun_gives_byte_identical_outputs_and_exports(full_run, tmp_path):
    config = load_config(full_run.copy(tmp_path / "project"))
    before = stored_bytes(config.storage_root)
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("DAGSTER_HOME", raising=False)
        result = tqc("run", "--config", config.config_path, "--partition", "v1|model_a", "--partition", "v1|model_b")
    assert result.exit_code == 0, result.output
    assert stored_bytes(config.storage_root) == before


def test_a_failed_blocking_check_fails_the_command(demo_dir, tmp_path, isolated_env):
    config_path = write_config(tmp_path / "strict", demo_dir, checks={"max_quarantine_rate": 0.0})
    result = tqc("run", "--config", str(config_path), "--partition", "v1|model_a", "--select", "judge_records,raw_judgments,processed_samples,quarantined_judgments")
    assert result.exit_code == 1
    assert "processed_samples:quarantine_rate" in result.output


def test_unknown_partition_or_asset_is_a_clear_error(demo_dir, tmp_path, isolated_env):
    config_path = str(write_config(tmp_path, demo_dir))
    result = tqc("run", "--config", config_path, "--partition", "v9|model_a")
    assert result.exit_code == 1 and "unknown partition" in result.output
    result = tqc("run", "--config", config_path, "--select", "raw_judgment")
    assert result.exit_code == 1 and "unknown asset" in result.output


def test_definitions_load_with_every_asset_check_and_partition(monkeypatch):
    # The code location as Dagster loads it: the lazy `defs` called with no config named, so the repo's
    # tqc.yaml is read from the current folder.
    monkeypatch.delenv("TQC_CONFIG", raising=False)
    monkeypatch.chdir(Path(__file__).resolve().parent.parent)
    from tqc_dagster.definitions import defs as code_location

    defs = code_location()
    assert {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()} == set(ASSETS + SAMPLE_ASSETS + ["judge_records", "judge_agreement", "exports"])
    checks = {f"{key.asset_key.to_user_string()}:{key.name}" for key in defs.resolve_asset_graph().asset_check_keys}
    assert checks == {
        "judge_records:schema",
        "judge_records:manifest_totals",
        "raw_judgments:schema",
        "processed_samples:schema",
        "processed_samples:accounting",
        "quarantined_judgments:schema",
        "processed_samples:quarantine_rate",
        "synthetic_samples:schema",
        "synthetic_samples:rows_match_their_group",
        "synthetic_samples:groups_filled",
        "trainset:schema",
        "testset:schema",
        "testset:no_synthetic_rows",
        "testset:no_source_on_both_sides",
        "balanced_trainset:schema",
        "balanced_trainset:balanced_within_tolerance",
        "exports:no_source_on_both_sides",
        "exports:lines_follow_format",
        "exports:counts_match_sources",
        "exports:splits_not_empty",
        "judge_agreement:kappa_per_criterion",
    }
    for stage in ("judgments", "synthesis", "splits"):
        assert sorted(defs.resolve_job_def(stage).partitions_def.get_partition_keys()) == PARTITIONS
    assert defs.resolve_job_def("publish_exports").partitions_def.get_partition_keys() == ["v1", "v2"]
    assert defs.resolve_job_def("ingest").partitions_def.get_partition_keys() == ["v1", "v2"]
    assert defs.resolve_job_def("agreement").partitions_def.get_partition_keys() == ["model_a", "model_b"]


def test_groups_synthesis_left_short_are_in_the_metadata_and_the_dataset_card(project):
    from tqc_dagster.assets.exports import synthesis_shortfalls

    config, output = project
    with dg.DagsterInstance.from_config(str(Path(config.config_path).parent / "dagster_home")) as instance:
        short = synthesis_shortfalls(instance, "v1", config.model_names)
    assert short is not None and short.height > 0  # 400 records: some categories have too few flawless bases
    assert short.filter(pl.col("why").is_null() | (pl.col("unfilled") <= 0)).is_empty()
    card = (Path(config.storage_root) / "exports" / "v1" / "simple" / "README.md").read_text()
    section = card.split("## Synthetic samples\n\n", 1)[1].split("\n## ", 1)[0]
    assert f"Rare groups left short by synthesis: {short.height} groups, {short['unfilled'].sum()} samples short" in section
    assert all(row["why"] in section for row in short.iter_rows(named=True))
    assert "synthetic share of balanced_trainset per criterion" in output
    # 400 records, test_ratio 0.1: some test criterion groups are too small to measure, and the summary says which
    assert "test criterion groups too small or with a single label" in output and "  warning: v1 simple/" in output
