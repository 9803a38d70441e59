"""Asset checks: one module per stage, each a `multi_asset_check` that reads what is stored.

The checks are not yielded inside the asset steps: they are their own steps, so a job, the UI or
`tqc check` can run them alone against the stored data, without rematerializing anything. In a run
that materializes an asset too, Dagster runs its checks right after it, and a failed blocking check
skips what follows in that run; blocking.py carries the same rule across runs.

Checks load their data through the `stored_data` input manager: the project's IO manager without
the blocking gate, since a check must be able to read (and re-check) data that failed it.

This module holds what the stage modules share: specs, the stored input, schema validation.
"""

from __future__ import annotations

import warnings

import dagster as dg
import pandera.errors
import pandera.polars as pa
import polars as pl

from tqc_dagster.assets.metadata import table_metadata

SCHEMA = "schema"
STORED = "stored_data"


def stored(asset: str) -> dg.AssetIn:
    """A check's input: the stored asset, read without the blocking gate (partition mappings go on the spec's `reads`)."""
    return dg.AssetIn(key=asset, input_manager_key=STORED)


def schema_check(schema: type[pa.DataFrameModel], frame: pl.DataFrame, asset_key: str) -> dg.AssetCheckResult:
    """Validate every row (lazy, all failures collected) and report the failures as metadata."""
    try:
        schema.validate(frame, lazy=True)
    except pandera.errors.SchemaErrors as errors:
        failures = errors.failure_cases
        return dg.AssetCheckResult(
            asset_key=asset_key,
            check_name=SCHEMA,
            passed=False,
            description=f"{failures.height} values break the {schema.__name__} model (see failure_cases): "
            "a bug upstream of this asset, not a data problem to wave through.",
            metadata={"failures": dg.MetadataValue.int(failures.height), "failure_cases": table_metadata(failures, 20)},
        )
    return dg.AssetCheckResult(asset_key=asset_key, check_name=SCHEMA, passed=True, metadata={"rows": frame.height})


def passed_or_explained(passed: bool, explanation: str) -> dict:
    """`passed` and, when it did not, the explanation the UI and `tqc check` show."""
    return {"passed": passed, "description": None if passed else explanation}


def check_spec(name: str, asset: str, description: str, partitions_def, blocking: bool = True, reads: tuple[dg.AssetDep, ...] = ()) -> dg.AssetCheckSpec:
    """A check evaluated per partition of its asset (partitioned checks are a Dagster preview feature);
    `reads`: the other stored assets it compares the asset with."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return dg.AssetCheckSpec(
            name,
            asset=asset,
            blocking=blocking,
            partitions_def=partitions_def,
            description=description,
            # No automation condition of their own: a run of the asset (job, backfill, sensor) then takes all
            # its checks along, so they run right after it in the same run, and blocking works in-run.
            additional_deps=reads,
        )


def schema_spec(asset: str, schema: type[pa.DataFrameModel], partitions_def) -> dg.AssetCheckSpec:
    description = f"Every row matches the {schema.__name__} pandera model; downstream assets do not run otherwise."
    return check_spec(SCHEMA, asset, description, partitions_def)
