"""The parquet IO manager reading a fan-in: every mapped partition, or (allow_missing_partitions) those stored.

A judge version being judged (judge_from) is in the config before its first output is ingested; what reads every
judge version of a model (judge_agreement, consensus splits) must go on without it instead of failing."""

from __future__ import annotations

import dagster as dg
import polars as pl
import pytest

from tqc_dagster.config import S3
from tqc_dagster.partitions import every_judge_version_of_a_model, partition_key
from tqc_dagster.resources.storage import MissingPartitionError, parquet_io_manager

SAMPLES = dg.MultiPartitionsDefinition({"judge_version": dg.StaticPartitionsDefinition(["v1", "v2", "v3"]), "model": dg.StaticPartitionsDefinition(["model_a"])})
MODELS = dg.StaticPartitionsDefinition(["model_a"])


@dg.asset(partitions_def=SAMPLES)
def processed_samples(context) -> pl.DataFrame:
    return pl.DataFrame({"judge_version": [context.partition_key.keys_by_dimension["judge_version"]]})


def reader(optional: bool) -> dg.AssetsDefinition:
    metadata = {"allow_missing_partitions": True} if optional else None

    @dg.asset(partitions_def=MODELS, ins={"processed_samples": dg.AssetIn(partition_mapping=every_judge_version_of_a_model(), metadata=metadata)})
    def judge_agreement(processed_samples: pl.DataFrame) -> pl.DataFrame:
        return processed_samples.sort("judge_version")

    return judge_agreement


def materialize(tmp_path, instance, assets, partition):
    """The last of `assets` for `partition` (the others only as its upstream)."""
    io_manager = parquet_io_manager(str(tmp_path / "lake"), S3(), {})
    return dg.materialize(
        assets, selection=[assets[-1]], partition_key=partition, instance=instance, resources={"io_manager": io_manager}, raise_on_error=False
    )


@pytest.fixture
def two_of_three_stored(tmp_path):
    """v1 and v2 of model_a stored, v3 not (being judged)."""
    instance = dg.DagsterInstance.ephemeral()
    for judge_version in ("v1", "v2"):
        assert materialize(tmp_path, instance, [processed_samples], partition_key(judge_version, "model_a")).success
    return instance


def test_an_input_allowing_missing_partitions_reads_those_stored_and_says_which_are_not(tmp_path, two_of_three_stored):
    result = materialize(tmp_path, two_of_three_stored, [processed_samples, reader(optional=True)], "model_a")
    assert result.success
    assert result.output_for_node("judge_agreement").get_column("judge_version").to_list() == ["v1", "v2"]
    logged = [entry.user_message for entry in two_of_three_stored.all_logs(result.run_id)]
    assert "processed_samples: partitions v3|model_a are not materialized yet; read without them" in logged


def test_any_other_input_fails_naming_the_partition_it_lacks(tmp_path, two_of_three_stored):
    result = materialize(tmp_path, two_of_three_stored, [processed_samples, reader(optional=False)], "model_a")
    assert not result.success
    error = result.failure_data_for_node("judge_agreement").error
    while error.cause is not None:
        error = error.cause
    assert error.cls_name == MissingPartitionError.__name__ and "processed_samples partition v3|model_a is not materialized yet" in error.message
