"""exports: the fine-tuning files of one judge version, both translation models together, per target model."""

from pathlib import Path

import dagster as dg
import polars as pl

from tqc_dagster.assets import OWNERS, storage_kinds
from tqc_dagster.assets.metadata import table_metadata
from tqc_dagster.assets.samples import BALANCED, TESTSET, TRAINSET
from tqc_dagster.config import TqcConfig
from tqc_dagster.core.export_folder import target_splits, verify_folders, write_export
from tqc_dagster.core.rubric import TARGET_MODELS
from tqc_dagster.core.split import shared_sources
from tqc_dagster.partitions import FOLLOW_UPSTREAM, both_models_of_a_judge_version
from tqc_dagster.stores import join, store_for

EXPORTS = "exports"
def export_folder(storage_root: str, judge_version: str, target_model: str) -> str:
    return join(storage_root, EXPORTS, judge_version, target_model)


class ExportRejected(Exception):
    """The staged export failed verification, so it was not published."""


def export_check_results(files: pl.DataFrame, leaked: pl.DataFrame) -> list[dg.AssetCheckResult]:
    """The export checks on a files table (verify_export) and the train/test sources: the exports step applies them
    to its staged files before publishing, the exports checks to what is published."""
    problems = int(files["problems"].sum())
    mismatched = files.filter(pl.col("lines") != pl.col("expected"))
    return [
        dg.AssetCheckResult(
            check_name="no_source_on_both_sides",
            passed=leaked.height == 0,
            description=None if leaked.height == 0 else f"{leaked.height} normalized source titles are in train and test of this judge "
            "version (see examples): the split is not leak-free; a bug in the split, or a changed split seed between partitions.",
            metadata={"shared_sources": leaked.height, "examples": table_metadata(leaked)},
        ),
        dg.AssetCheckResult(
            check_name="lines_follow_format",
            passed=problems == 0,
            description=None if problems == 0 else f"{problems} export lines break their format (see the files table of the failed run): "
            "a template or writer bug.",
            metadata={"problems": problems, "files": table_metadata(files, 40)},
        ),
        dg.AssetCheckResult(
            check_name="counts_match_sources",
            passed=mismatched.height == 0,
            description=None if mismatched.height == 0 else f"{mismatched.height} export files do not hold exactly the samples of "
            "their source frame (see mismatched_files): lines were lost or duplicated while writing.",
            metadata={"mismatched_files": table_metadata(mismatched)},
        ),
    ]


def build_export_assets(config: TqcConfig, partitions: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    both_models = both_models_of_a_judge_version()

    @dg.asset(
        name=EXPORTS,
        group_name="exports",
        kinds=storage_kinds(config.storage_root, "polars", "json"),
        owners=OWNERS["exports"],
        automation_condition=FOLLOW_UPSTREAM,
        partitions_def=partitions,
        ins={name: dg.AssetIn(partition_mapping=both_models) for name in (BALANCED, TESTSET, TRAINSET)},
        description="Fine-tuning files per target model (simple, complex) of one judge version, both translation "
        "models together: sft/, llamafactory/, bedrock/, grpo/ and a dataset card. Train from balanced_trainset, test from testset. "
        "Staged, verified and only then published, both target models at once; a failed verification publishes nothing.",
    )
    def exports(context: dg.AssetExecutionContext, balanced_trainset: pl.DataFrame, testset: pl.DataFrame, trainset: pl.DataFrame):
        judge_version = context.partition_key
        leaked = shared_sources(trainset, testset)
        verified: dict = {}  # the staged export's files table and check results, filled by write()

        def write(staging: Path) -> None:
            """Write every target model's folder, read every file back, and refuse to publish on any problem."""
            written = {}
            for target_model in TARGET_MODELS:
                (staging / target_model).mkdir()
                written[target_model] = write_export(staging / target_model, judge_version, target_model, target_splits(balanced_trainset, testset, target_model), config)
            verified["files"] = verify_folders(staging, written)
            verified["results"] = export_check_results(verified["files"], leaked)
            if not all(result.passed for result in verified["results"]):
                raise ExportRejected

        folder = join(config.storage_root, EXPORTS, judge_version)
        try:
            store_for(config.storage_root, config.s3).publish_folder(folder, write, markers=TARGET_MODELS)
        except ExportRejected:
            failed = [f"exports:{result.check_name}: {result.description}" for result in verified["results"] if not result.passed]
            raise dg.Failure(
                description=f"The exports of {judge_version} failed verification and were not published; {folder} keeps "
                "the previous verified export, if any.\n" + "\n".join(failed),
                metadata={"files": table_metadata(verified["files"], 40), "shared_sources": leaked.height},
                allow_retries=False,
            ) from None
        return dg.MaterializeResult(
            metadata={
                "folder": dg.MetadataValue.path(folder),
                "files": table_metadata(verified["files"], 40),
                "train_samples": balanced_trainset.height,
                "test_samples": testset.height,
            }
        )

    return [exports]
