"""Which partitions each stage of `tqc run` takes: derived from the stage job's partitions definition, as the UI's
backfill of the same sample partitions would refresh them (no data needed: the definitions only)."""

from __future__ import annotations

import pytest

from tqc_dagster.config import load_config
from tqc_dagster.definitions import STAGES, build_definitions
from tqc_dagster.runner import selected_partitions, stage_keys
from tqc_dagster_tests.conftest import write_config

STAGE = {stage.job: stage for stage in STAGES}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    folder = tmp_path_factory.mktemp("stages")
    config = load_config(write_config(folder, folder / "demo"))
    return config, build_definitions(config)


def keys_of(project, stage: str, partitions: list[str], stored=frozenset()):
    config, defs = project
    keys = selected_partitions(config, partitions)
    due, waiting = stage_keys(defs, STAGE[stage], keys, lambda asset, partition: (asset, partition) in stored)
    return [str(key) for key in due], waiting


def test_sample_stages_take_the_chosen_partitions(project):
    for stage in ("judgments", "synthesis", "splits"):
        assert keys_of(project, stage, ["v2|model_a", "v2|model_b"]) == (["v2|model_a", "v2|model_b"], [])


def test_a_judge_version_stage_runs_each_version_a_chosen_partition_falls_in(project):
    assert keys_of(project, "ingest", ["v2|model_b"]) == (["v2"], [])
    assert keys_of(project, "publish_exports", ["v1|model_a", "v1|model_b", "v2|model_a", "v2|model_b"]) == (["v1", "v2"], [])


def test_a_fan_in_waits_for_what_it_reads_unless_it_is_stored(project):
    # judge_agreement of model_a reads processed_samples of v1|model_a and v2|model_a.
    due, waiting = keys_of(project, "agreement", ["v2|model_a"])
    assert due == [] and waiting == ["judge_agreement model_a: waits for v1|model_a (not stored, not in this run)"]
    assert keys_of(project, "agreement", ["v2|model_a"], stored={("processed_samples", "v1|model_a")}) == (["model_a"], [])
    # Exports of v1 read both models' splits: with only model_a in the run, model_b's must be stored.
    due, waiting = keys_of(project, "publish_exports", ["v1|model_a"])
    assert due == [] and waiting == ["exports v1: waits for v1|model_b (not stored, not in this run)"]
    splits = {(asset, "v1|model_b") for asset in ("trainset", "testset", "balanced_trainset")}
    assert keys_of(project, "publish_exports", ["v1|model_a"], stored=splits) == (["v1"], [])
