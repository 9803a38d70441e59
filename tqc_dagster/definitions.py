"""The Dagster definitions of tqc_dagster: assets, checks, resources and jobs, built from one config."""

from __future__ import annotations

import dagster as dg

from tqc_dagster.assets.ingest import build_ingest_assets
from tqc_dagster.config import TqcConfig, project_config
from tqc_dagster.partitions import sample_partitions
from tqc_dagster.resources.storage import ParquetIOManager

ALL_ASSETS_JOB = "all_assets"


def build_definitions(config: TqcConfig) -> dg.Definitions:
    partitions = sample_partitions(config)
    assets = build_ingest_assets(config, partitions)
    return dg.Definitions(
        assets=assets,
        jobs=[
            dg.define_asset_job(
                ALL_ASSETS_JOB,
                selection=dg.AssetSelection.all(),
                description="Every asset of one judge_version x model partition.",
                executor_def=dg.in_process_executor,
            )
        ],
        resources={"io_manager": ParquetIOManager(storage_root=config.storage_root)},
    )


defs = build_definitions(project_config())
