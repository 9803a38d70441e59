"""The Dagster definitions of tqc_dagster: assets, checks, resources and jobs, built from one config."""

from __future__ import annotations

import dagster as dg

from tqc_dagster.assets.agreement import AGREEMENT, build_agreement_assets
from tqc_dagster.assets.exports import EXPORTS, build_export_assets
from tqc_dagster.assets.ingest import PROCESSED, QUARANTINED, RAW, RECORDS, build_ingest_assets
from tqc_dagster.assets.samples import BALANCED, SYNTHETIC_SAMPLES, TESTSET, TRAINSET, build_sample_assets
from tqc_dagster.config import TqcConfig, project_config
from tqc_dagster.partitions import judge_version_partitions, model_partitions, sample_partitions
from tqc_dagster.resources.bedrock import BedrockResource
from tqc_dagster.resources.storage import ParquetIOManager
from tqc_dagster.sensors import build_input_sensors
from tqc_dagster.stores import s3_resource

INGEST_JOB = "ingest"
SAMPLES_JOB = "samples"
EXPORTS_JOB = "exports"
AGREEMENT_JOB = "agreement"
AUTOMATION_SENSOR = "follow_upstream"


def build_definitions(config: TqcConfig) -> dg.Definitions:
    partitions = sample_partitions(config)
    judge_versions = judge_version_partitions(config)
    agreement = build_agreement_assets(config, model_partitions(config))
    assets = [
        *build_ingest_assets(config, partitions, judge_versions),
        *build_sample_assets(config, partitions),
        *build_export_assets(config, judge_versions),
        *agreement,
    ]
    s3 = s3_resource(config)
    per_partition = dg.AssetSelection.assets(RAW, PROCESSED, QUARANTINED, SYNTHETIC_SAMPLES, TRAINSET, TESTSET, BALANCED)
    return dg.Definitions(
        assets=assets,
        jobs=[
            dg.define_asset_job(
                INGEST_JOB,
                selection=dg.AssetSelection.assets(RECORDS),
                description="Read one judge version's batch outputs once, for all models.",
                executor_def=dg.in_process_executor,
            ),
            dg.define_asset_job(
                SAMPLES_JOB,
                selection=per_partition,
                description="Every asset of one judge_version x model partition, from batch outputs to the balanced trainset.",
                executor_def=dg.in_process_executor,
            ),
            *(
                [
                    dg.define_asset_job(
                        AGREEMENT_JOB,
                        selection=dg.AssetSelection.assets(AGREEMENT),
                        description="Agreement of the two judge versions, per translation model.",
                        executor_def=dg.in_process_executor,
                    )
                ]
                if agreement
                else []
            ),
            dg.define_asset_job(
                EXPORTS_JOB,
                selection=dg.AssetSelection.assets(EXPORTS),
                description="The fine-tuning exports of one judge version (both models).",
                executor_def=dg.in_process_executor,
            ),
        ],
        sensors=[
            *build_input_sensors(config, INGEST_JOB),
            dg.AutomationConditionSensorDefinition(
                AUTOMATION_SENSOR,
                target=dg.AssetSelection.all(),
                default_status=dg.DefaultSensorStatus.RUNNING,
                description="Materializes whatever follows an updated input (see FOLLOW_UPSTREAM in partitions.py).",
            ),
        ],
        resources={
            "io_manager": ParquetIOManager(storage_root=config.storage_root, s3=s3),
            "s3": s3,
            "bedrock": BedrockResource.from_config(config.bedrock),
        },
    )


defs = build_definitions(project_config())
