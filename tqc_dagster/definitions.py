"""The Dagster definitions of tqc_dagster: assets, checks, resources and jobs, built from one config."""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from tqc_dagster.assets.agreement import AGREEMENT, build_agreement_assets
from tqc_dagster.blocking import gating_checks
from tqc_dagster.assets.exports import EXPORTS, build_export_assets
from tqc_dagster.assets.ingest import PROCESSED, QUARANTINED, RAW, RECORDS, build_ingest_assets
from tqc_dagster.assets.samples import BALANCED, SYNTHETIC_SAMPLES, TESTSET, TRAINSET, build_sample_assets
from tqc_dagster.config import TqcConfig, project_config
from tqc_dagster.partitions import judge_version_partitions, model_partitions, sample_partitions
from tqc_dagster.resources.bedrock import BedrockResource
from tqc_dagster.resources.storage import parquet_io_manager
from tqc_dagster.sensors import build_input_sensors

AUTOMATION_SENSOR = "follow_upstream"


@dataclass(frozen=True)
class Stage:
    """A pipeline stage: its job, its assets and the partitions its runs take."""

    job: str
    assets: tuple[str, ...]
    partitions: str  # "judge_version", "sample" (judge_version x model) or "model"
    description: str


# In running order: each stage's inputs are finished before it starts (consensus filtering in
# splits needs every judge's samples, so agreement and judgments both come before it).
# Job names must differ from every asset's op name (Dagster keeps one namespace for both).
STAGES = (
    Stage("ingest", (RECORDS,), "judge_version", "Read one judge version's batch outputs once, for all models."),
    Stage("judgments", (RAW, PROCESSED, QUARANTINED), "sample", "Validate one model's judgments: samples and quarantine."),
    Stage("agreement", (AGREEMENT,), "model", "Agreement of the two judge versions on one model's translations."),
    Stage("synthesis", (SYNTHETIC_SAMPLES,), "sample", "Top up the rare groups of one partition with synthetic samples."),
    Stage("splits", (TRAINSET, TESTSET, BALANCED), "sample", "The leak-free split and the balanced trainset of one partition."),
    Stage("publish_exports", (EXPORTS,), "judge_version", "The fine-tuning exports of one judge version (both models)."),
)


def build_definitions(config: TqcConfig) -> dg.Definitions:
    partitions = sample_partitions(config)
    judge_versions = judge_version_partitions(config)
    assets = [
        *build_ingest_assets(config, partitions, judge_versions),
        *build_sample_assets(config, partitions),
        *build_export_assets(config, judge_versions),
        *build_agreement_assets(config, model_partitions(config)),
    ]
    present = {key.to_user_string() for asset in assets for key in asset.keys}
    return dg.Definitions(
        assets=assets,
        # Runs launched from the UI or by sensors run every step in one process, as `tqc run` does:
        # a process per step costs ~20 s each here and buys nothing for polars steps that use every core.
        executor=dg.in_process_executor,
        jobs=[
            dg.define_asset_job(stage.job, selection=dg.AssetSelection.assets(*stage.assets), description=stage.description, executor_def=dg.in_process_executor)
            for stage in STAGES
            if set(stage.assets) <= present
        ],
        sensors=[
            *build_input_sensors(config, STAGES[0].job),
            dg.AutomationConditionSensorDefinition(
                AUTOMATION_SENSOR,
                target=dg.AssetSelection.all(),
                default_status=dg.DefaultSensorStatus.RUNNING,
                description="Materializes whatever follows an updated input (see FOLLOW_UPSTREAM in partitions.py).",
            ),
        ],
        resources={
            "io_manager": parquet_io_manager(config.storage_root, config.s3, gating_checks(assets)),
            "bedrock": BedrockResource.from_config(config.bedrock),
        },
    )


defs = build_definitions(project_config())
