"""Asset-check results shared by the assets: schema validation against the pandera models."""

from __future__ import annotations

import warnings

import dagster as dg
import pandera.errors
import pandera.polars as pa
import polars as pl

from tqc_dagster.assets.metadata import markdown

SCHEMA = "schema"


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
            metadata={"failures": dg.MetadataValue.int(failures.height), "failure_cases": markdown(failures, 20)},
        )
    return dg.AssetCheckResult(asset_key=asset_key, check_name=SCHEMA, passed=True, metadata={"rows": frame.height})


def check_spec(name: str, asset: str, description: str, partitions_def, blocking: bool = True) -> dg.AssetCheckSpec:
    """A check evaluated per partition of its asset (partitioned checks are a Dagster preview feature)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return dg.AssetCheckSpec(
            name, asset=asset, blocking=blocking, partitions_def=partitions_def, description=description
        )


def schema_spec(asset: str, schema: type[pa.DataFrameModel], partitions_def) -> dg.AssetCheckSpec:
    description = f"Every row matches the {schema.__name__} pandera model; downstream assets do not run otherwise."
    return check_spec(SCHEMA, asset, description, partitions_def)
