"""Checks of the exports stage: what is published under exports/<judge_version>/, read back."""

from pathlib import Path

import dagster as dg
import polars as pl

from tqc_dagster.assets.exports import EXPORTS, export_check_results, export_folder
from tqc_dagster.core.export_folder import empty_splits, expected_counts, target_splits, verify_folders
from tqc_dagster.assets.samples import BALANCED, TESTSET, TRAINSET
from tqc_dagster.checks import check_spec, stored
from tqc_dagster.config import TqcConfig
from tqc_dagster.core.rubric import TARGET_MODELS
from tqc_dagster.core.split import shared_sources
from tqc_dagster.partitions import both_models_of_a_judge_version
from tqc_dagster.stores import SUCCESS_MARKER, join, store_for

NAMES = ("no_source_on_both_sides", "lines_follow_format", "counts_match_sources", "splits_not_empty")


def build_export_checks(config: TqcConfig, partitions: dg.PartitionsDefinition) -> list:
    sources = (BALANCED, TESTSET, TRAINSET)

    @dg.multi_asset_check(
        name=f"{EXPORTS}_checks",
        specs=[
            check_spec(
                "no_source_on_both_sides",
                EXPORTS,
                "No normalized source title is in the train and the test side anywhere in the judge version (both models).",
                partitions,
                reads=tuple(dg.AssetDep(name, partition_mapping=both_models_of_a_judge_version()) for name in sources),
            ),
            check_spec(
                "lines_follow_format",
                EXPORTS,
                "Every published export data file parses and follows its format: chat roles alternate, start with the user and end "
                "with the assistant; no reserved Bedrock keyword (any case) and at most 20,000 lines per Bedrock file; GRPO, verl and "
                "QE columns as documented; no data file for an empty split.",
                partitions,
            ),
            check_spec("counts_match_sources", EXPORTS, "Each published export file holds exactly the samples of the frame it came from (Bedrock: minus the lines left out and counted).", partitions),
            check_spec(
                "splits_not_empty",
                EXPORTS,
                "Warns naming each target model and split without a sample: such a split is exported as no file, and a trainer gets no such split.",
                partitions,
                blocking=False,
            ),
        ],
        ins={name: stored(name) for name in sources},
    )
    def exports_checks(context: dg.AssetCheckExecutionContext, balanced_trainset: pl.DataFrame, testset: pl.DataFrame, trainset: pl.DataFrame):
        store = store_for(config.storage_root, config.s3)
        for target_model in TARGET_MODELS:
            folder = export_folder(config.storage_root, context.partition_key, target_model)
            if not store.exists(join(folder, SUCCESS_MARKER)):
                for name in NAMES:
                    yield dg.AssetCheckResult(asset_key=EXPORTS, check_name=name, passed=False, description=f"{folder} is not published (no {SUCCESS_MARKER}).")
                return
        expected = {target_model: expected_counts(target_splits(balanced_trainset, testset, target_model), target_model, config) for target_model in TARGET_MODELS}
        with store.local_folder(join(config.storage_root, EXPORTS, context.partition_key)) as local:
            files = verify_folders(Path(local), expected)
        yield from export_check_results(files, shared_sources(trainset, testset), empty_splits(expected))

    return [exports_checks]
