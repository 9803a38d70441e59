"""exports: the fine-tuning files of one judge version, both translation models together, per target model."""

from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
import polars as pl

from tqc_dagster.assets import OWNERS, storage_kinds
from tqc_dagster.assets.metadata import table_metadata
from tqc_dagster.assets.samples import BALANCED, SYNTHETIC_SAMPLES, TESTSET, TRAINSET, UNFILLED_COLUMNS, UNFILLED_GROUPS, UNFILLED_SCHEMA
from tqc_dagster.config import TqcConfig
from tqc_dagster.core.dataset_card import provenance_section
from tqc_dagster.core.export_folder import empty_splits, target_splits, verify_folders, write_export
from tqc_dagster.core.provenance import card_config, code_version, input_fingerprint
from tqc_dagster.core.rubric import SIMPLE, TARGET_MODELS
from tqc_dagster.core.split import shared_sources
from tqc_dagster.partitions import FOLLOW_UPSTREAM, both_models_of_a_judge_version
from tqc_dagster.stores import join, store_for

EXPORTS = "exports"


def export_folder(storage_root: str, judge_version: str, target_model: str) -> str:
    return join(storage_root, EXPORTS, judge_version, target_model)


class ExportRejected(Exception):
    """The staged export failed verification, so it was not published."""


def export_check_results(files: pl.DataFrame, leaked: pl.DataFrame, empty: list[str]) -> list[dg.AssetCheckResult]:
    """The export checks on a files table (verify_export), the train/test sources and the empty splits
    (`<target_model> <split>`, see export_folder.empty_splits): the exports step applies them to its staged files
    before publishing, the exports checks to what is published. `splits_not_empty` only warns."""
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
        dg.AssetCheckResult(
            check_name="splits_not_empty",
            passed=not empty,
            severity=dg.AssetCheckSeverity.WARN,
            description=None if not empty else f"Empty splits, exported as no file at all: {', '.join(empty)}. A trainer gets no "
            "such split; the dataset card says why (e.g. a target model without negatives has no balanced training sample).",
            metadata={"empty_splits": ", ".join(empty) or "none"},
        ),
    ]


def card_provenance(config: TqcConfig, judge_version: str) -> list[str]:
    """The card's sections on what made an export: code version, the judge version's batch outputs, the config."""
    pattern = config.judge_versions[judge_version].input
    states = store_for(pattern, config.s3).glob_states(pattern)
    return [provenance_section(code_version(), input_fingerprint(states, pattern, config.storage_root), card_config(config))]


def synthesis_shortfalls(instance: dg.DagsterInstance, judge_version: str, models: list[str]) -> pl.DataFrame | None:
    """The rare groups synthesis left short in the judge version's partitions, per translation model, as the latest
    `synthetic_samples` materialization of each recorded them (None when one of them has no such record)."""
    frames = []
    for model in models:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(SYNTHETIC_SAMPLES), asset_partitions=[f"{judge_version}|{model}"]), limit=1
        ).records
        entry = records[0].asset_materialization.metadata.get(UNFILLED_GROUPS) if records and records[0].asset_materialization else None
        if entry is None:
            return None
        frame = pl.DataFrame(entry.value, schema=UNFILLED_SCHEMA, orient="row") if entry.value else pl.DataFrame(schema=UNFILLED_SCHEMA)
        frames.append(frame.select(pl.lit(model).alias("model"), *UNFILLED_COLUMNS))
    return pl.concat(frames).sort("model", "product_category", "criterion", "score_bucket")



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
        "models together: sft/, llamafactory/, bedrock/, grpo/, verl/, qe/ and dataset cards (shown below per target model). Train from balanced_trainset, test from testset. "
        "Staged, verified and only then published, both target models at once; a failed verification publishes nothing.",
    )
    def exports(context: dg.AssetExecutionContext, balanced_trainset: pl.DataFrame, testset: pl.DataFrame, trainset: pl.DataFrame):
        judge_version = context.partition_key
        leaked = shared_sources(trainset, testset)
        provenance = card_provenance(config, judge_version)
        unfilled = synthesis_shortfalls(context.instance, judge_version, config.model_names)
        verified: dict = {}  # the staged export's files table, check results and cards, filled by write()

        def write(staging: Path) -> None:
            """Write every target model's folder, read every file back, and refuse to publish on a failed blocking check."""
            written = {}
            for target_model in TARGET_MODELS:
                (staging / target_model).mkdir()
                written[target_model] = write_export(staging / target_model, judge_version, target_model, target_splits(balanced_trainset, testset, target_model), config, provenance,
                                                       unfilled if target_model == SIMPLE else None)
            verified["files"] = verify_folders(staging, written)
            verified["results"] = export_check_results(verified["files"], leaked, empty_splits(written))
            verified["cards"] = {f"dataset_card_{target_model}": dg.MetadataValue.md((staging / target_model / "README.md").read_text()) for target_model in TARGET_MODELS}
            verified["bedrock_left_out"] = sum(count["bedrock_left_out"] for counts in written.values() for count in counts.values())
            if not all(result.passed or result.severity == dg.AssetCheckSeverity.WARN for result in verified["results"]):
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
                "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "bedrock_left_out": verified["bedrock_left_out"],
                **verified["cards"],
            }
        )

    return [exports]
