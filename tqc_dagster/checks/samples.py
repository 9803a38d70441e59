"""Checks of the synthesis and splits stages: synthetic_samples, trainset / testset, balanced_trainset."""

import dagster as dg
import polars as pl

from tqc_dagster.assets.ingest import PROCESSED
from tqc_dagster.assets.metadata import table_metadata
from tqc_dagster.assets.samples import BALANCED, SYNTHETIC_SAMPLES, TESTSET, TRAINSET
from tqc_dagster.checks import check_spec, passed_or_explained, schema_check, schema_spec, stored
from tqc_dagster.config import TqcConfig
from tqc_dagster.core.balance import balance_violations, over_synthetic_share
from tqc_dagster.core.rubric import SYNTHETIC
from tqc_dagster.core.split import shared_sources
from tqc_dagster.core.synthesis import GROUP_KEYS, deficits, rows_outside_their_group, shortfalls
from tqc_dagster.schemas import Samples


def build_sample_checks(config: TqcConfig, partitions: dg.PartitionsDefinition) -> list:
    thresholds = config.labels
    synthesis = config.synthesis
    shortfall_fails = synthesis.on_shortfall == "fail"

    @dg.multi_asset_check(
        name=f"{SYNTHETIC_SAMPLES}_checks",
        specs=[
            schema_spec(SYNTHETIC_SAMPLES, Samples, partitions),
            check_spec(
                "rows_match_their_group",
                SYNTHETIC_SAMPLES,
                "Every synthetic row's scores put it in the group it was made for (criterion and score bucket), "
                "so synthesis cannot mislabel the training data.",
                partitions,
                reads=(dg.AssetDep(PROCESSED),),
            ),
            check_spec(
                "groups_filled",
                SYNTHETIC_SAMPLES,
                f"Every rare group reaches min_samples ({synthesis.min_samples}) with its synthetic rows. A shortfall "
                f"{'fails and stops what follows' if shortfall_fails else 'warns'} (synthesis.on_shortfall: {synthesis.on_shortfall}).",
                partitions,
                blocking=shortfall_fails,
                reads=(dg.AssetDep(PROCESSED),),
            ),
        ],
        ins={SYNTHETIC_SAMPLES: stored(SYNTHETIC_SAMPLES), PROCESSED: stored(PROCESSED)},
    )
    def synthetic_samples_checks(synthetic_samples: pl.DataFrame, processed_samples: pl.DataFrame):
        yield schema_check(Samples, synthetic_samples, SYNTHETIC_SAMPLES)
        wanted = deficits(processed_samples, synthesis.min_samples)
        short = shortfalls(synthetic_samples, wanted)
        yield dg.AssetCheckResult(
            asset_key=SYNTHETIC_SAMPLES,
            check_name="groups_filled",
            severity=dg.AssetCheckSeverity.ERROR if shortfall_fails else dg.AssetCheckSeverity.WARN,
            **passed_or_explained(short.is_empty(), f"{short.height} of {wanted.height} rare groups stay below min_samples "
                                  f"({synthesis.min_samples}), {int(short.get_column('short').sum())} samples short (see groups; the "
                                  "synthetic_samples metadata says why per group): their criterion is under-represented in training."),
            metadata={"groups_short": short.height, "samples_short": int(short.get_column("short").sum()), "groups": table_metadata(short, 50)},
        )
        mismatched = rows_outside_their_group(synthetic_samples, wanted, thresholds)
        yield dg.AssetCheckResult(
            asset_key=SYNTHETIC_SAMPLES,
            check_name="rows_match_their_group",
            **passed_or_explained(mismatched.height == 0, f"{mismatched.height} synthetic rows do not fall in the group they were made for "
                                  "(see examples): the synthesis backend mislabels; do not train on this partition until it is fixed."),
            metadata={"mismatched_rows": mismatched.height, "examples": table_metadata(mismatched.select("sample_id", *GROUP_KEYS, "scores"))},
        )

    @dg.multi_asset_check(
        name=f"{TRAINSET}_checks",
        specs=[
            schema_spec(TRAINSET, Samples, partitions),
            schema_spec(TESTSET, Samples, partitions),
            check_spec("no_synthetic_rows", TESTSET, "The test set holds judged samples only: synthetic rows would grade models on made-up data.", partitions),
            check_spec(
                "no_source_on_both_sides",
                TESTSET,
                "No normalized source title is in both train and test of this partition (see the exports check for the whole judge version).",
                partitions,
                reads=(dg.AssetDep(TRAINSET),),
            ),
        ],
        ins={TRAINSET: stored(TRAINSET), TESTSET: stored(TESTSET)},
    )
    def split_checks(trainset: pl.DataFrame, testset: pl.DataFrame):
        yield schema_check(Samples, trainset, TRAINSET)
        yield schema_check(Samples, testset, TESTSET)
        synthetic_in_test = testset.filter(pl.col("origin") == SYNTHETIC).height
        yield dg.AssetCheckResult(
            asset_key=TESTSET,
            check_name="no_synthetic_rows",
            **passed_or_explained(synthetic_in_test == 0, f"{synthetic_in_test} synthetic rows in the test set: a bug in the split."),
            metadata={"synthetic_rows": synthetic_in_test},
        )
        overlap = shared_sources(trainset, testset)
        yield dg.AssetCheckResult(
            asset_key=TESTSET,
            check_name="no_source_on_both_sides",
            **passed_or_explained(overlap.height == 0, f"{overlap.height} normalized source titles are in train and test (see examples): "
                                  "the split leaks; a bug in the split, or data written around it."),
            metadata={"shared_sources": overlap.height, "examples": table_metadata(overlap)},
        )

    @dg.multi_asset_check(
        name=f"{BALANCED}_checks",
        specs=[
            schema_spec(BALANCED, Samples, partitions),
            check_spec(
                "balanced_within_tolerance",
                BALANCED,
                "Each balance group holds as many positives as negatives, unless it ran out of positives (a reported shortfall), "
                "and no group's synthetic share is above balance.max_synthetic_share.",
                partitions,
                reads=(dg.AssetDep(TRAINSET),),
            ),
        ],
        ins={BALANCED: stored(BALANCED), TRAINSET: stored(TRAINSET)},
    )
    def balanced_trainset_checks(balanced_trainset: pl.DataFrame, trainset: pl.DataFrame):
        yield schema_check(Samples, balanced_trainset, BALANCED)
        share = config.balance.max_synthetic_share
        unbalanced = balance_violations(balanced_trainset, trainset, share)
        over = over_synthetic_share(balanced_trainset, share)
        problems = []
        if unbalanced.height:
            problems.append(f"{unbalanced.height} balance groups hold more of one label than the other although positives were left "
                            "(see unbalanced_groups)")
        if over.height:
            problems.append(f"{over.height} balance groups are more than {share} synthetic (see over_synthetic_share)")
        yield dg.AssetCheckResult(
            asset_key=BALANCED,
            check_name="balanced_within_tolerance",
            **passed_or_explained(not problems, "; ".join(problems) + ": a bug in balancing."),
            metadata={"unbalanced_groups": table_metadata(unbalanced, 20), "over_synthetic_share": table_metadata(over, 20)},
        )

    return [synthetic_samples_checks, split_checks, balanced_trainset_checks]
