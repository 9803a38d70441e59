"""The Dagster definitions of tqc_dagster: assets, checks, resources and jobs, built from one config.

The code location's entry point is `defs`, a `@dg.definitions` function: Dagster (`dagster dev`, the code server,
`dg check defs`, run workers) calls it after importing this module, so importing reads no config. That lets `tqc
run --config` name the file before anything reads one, and lets tests and tools import this module whatever
`TQC_CONFIG` says. `build_definitions(config)` builds the same Definitions from any config.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import dagster as dg

from tqc_dagster.assets.agreement import AGREEMENT, build_agreement_assets
from tqc_dagster.blocking import gating_checks
from tqc_dagster.checks import STORED
from tqc_dagster.checks.agreement import build_agreement_checks
from tqc_dagster.checks.exports import build_export_checks
from tqc_dagster.checks.ingest import build_ingest_checks
from tqc_dagster.checks.judging import build_judging_checks
from tqc_dagster.checks.samples import build_sample_checks
from tqc_dagster.assets.exports import EXPORTS, build_export_assets
from tqc_dagster.assets.judging import build_judging_assets
from tqc_dagster.assets.ingest import PROCESSED, QUARANTINED, RAW, RECORDS, build_ingest_assets
from tqc_dagster.assets.samples import BALANCED, SYNTHETIC_SAMPLES, TESTSET, TRAINSET, build_sample_assets
from tqc_dagster.assets.synthesis_batch import build_synthesis_batch_assets
from tqc_dagster.config import TqcConfig, project_config
from tqc_dagster.partitions import judge_version_partitions, model_partitions, sample_partitions
from tqc_dagster.resources.bedrock import BedrockResource
from tqc_dagster.resources.storage import parquet_io_manager
from tqc_dagster.sensors import build_input_sensors
from tqc_dagster.batch_sensors import build_batch_sensors

AUTOMATION_SENSOR = "follow_upstream"


@dataclass(frozen=True)
class Stage:
    """A pipeline stage: its job and its assets (the job's runs take the partitions of its assets)."""

    job: str
    assets: tuple[str, ...]
    description: str

    @property
    def check_job(self) -> str:
        """The job that runs this stage's checks alone, on what is stored."""
        return f"check_{self.job}"


def checks_of(asset_checks: list[dg.AssetChecksDefinition], assets: tuple[str, ...]) -> list[dg.AssetCheckKey]:
    return [key for checks in asset_checks for key in checks.check_keys if key.asset_key.to_user_string() in assets]


# In running order: each stage's inputs are finished before it starts (consensus filtering in
# splits needs every judge's samples, so agreement and judgments both come before it).
# Job names must differ from every asset's op name (Dagster keeps one namespace for both).
STAGES = (
    Stage("ingest", (RECORDS,), "Read one judge version's batch outputs once, for all models."),
    Stage("judgments", (RAW, PROCESSED, QUARANTINED), "Validate one model's judgments: samples and quarantine."),
    Stage("agreement", (AGREEMENT,), "Agreement of the judge versions of agreement.judges, pair by pair, on one model's translations."),
    Stage("synthesis", (SYNTHETIC_SAMPLES,), "Top up the rare groups of one partition with synthetic samples."),
    Stage("splits", (TRAINSET, TESTSET, BALANCED), "The leak-free split and the balanced trainset of one partition."),
    Stage("publish_exports", (EXPORTS,), "The fine-tuning exports of one judge version (both models)."),
)


def build_definitions(config: TqcConfig) -> dg.Definitions:
    partitions = sample_partitions(config)
    judge_versions = judge_version_partitions(config)
    assets = [
        *build_ingest_assets(config, partitions, judge_versions),
        *build_sample_assets(config, partitions),
        *build_export_assets(config, judge_versions),
        *build_agreement_assets(config, model_partitions(config)),
        *build_judging_assets(config, judge_versions),
        *build_synthesis_batch_assets(config, partitions),
    ]
    asset_checks = [
        *build_ingest_checks(config, partitions, judge_versions),
        *build_sample_checks(config, partitions),
        *build_export_checks(config, judge_versions),
        *build_agreement_checks(config, model_partitions(config)),
        *build_judging_checks(config),
    ]
    present = {key.to_user_string() for asset in assets for key in asset.keys}
    return dg.Definitions(
        assets=_with_code_references(assets),
        asset_checks=asset_checks,
        # Runs launched from the UI or by sensors run every step in one process, as `tqc run` does:
        # a process per step costs ~20 s each here and buys nothing for polars steps that use every core.
        executor=dg.in_process_executor,
        jobs=[
            *(
                dg.define_asset_job(stage.job, selection=dg.AssetSelection.assets(*stage.assets), description=stage.description, executor_def=dg.in_process_executor)
                for stage in STAGES
                if set(stage.assets) <= present
            ),
            *(
                dg.define_asset_job(
                    stage.check_job,
                    selection=dg.AssetSelection.checks(*checks_of(asset_checks, stage.assets)),
                    description=f"The checks of {', '.join(stage.assets)} on what is stored, without materializing anything.",
                    executor_def=dg.in_process_executor,
                )
                for stage in STAGES
                if set(stage.assets) <= present
            ),
        ],
        sensors=[
            *build_input_sensors(config, STAGES[0].job),
            *build_batch_sensors(config),
            dg.AutomationConditionSensorDefinition(
                AUTOMATION_SENSOR,
                target=dg.AssetSelection.all(),
                default_status=dg.DefaultSensorStatus.RUNNING,
                description="Materializes whatever follows an updated input (see FOLLOW_UPSTREAM in partitions.py).",
            ),
        ],
        resources={
            "io_manager": parquet_io_manager(config.storage_root, config.s3, gating_checks([*assets, *asset_checks])),
            STORED: parquet_io_manager(config.storage_root, config.s3, {}),
            "bedrock": BedrockResource(config.bedrock),
        },
    )


def _with_code_references(assets: list[dg.AssetsDefinition]) -> list[dg.AssetsDefinition]:
    """Each asset links to the file and line that defines it (a Dagster beta feature)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        return dg.with_source_code_references(assets)


@dg.definitions
def defs() -> dg.Definitions:
    """The code location: the Definitions of the config in use (`TQC_CONFIG`, else tqc.yaml in the current folder),
    built when Dagster loads the location, not at import."""
    return build_definitions(project_config())
