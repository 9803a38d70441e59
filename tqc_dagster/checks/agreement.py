"""Check of the agreement stage: judge_agreement."""

import dagster as dg
import polars as pl

from tqc_dagster.assets.agreement import AGREEMENT
from tqc_dagster.assets.metadata import table_metadata
from tqc_dagster.checks import check_spec, passed_or_explained, stored
from tqc_dagster.config import TqcConfig
from tqc_dagster.core.agreement import OVERALL


def build_agreement_checks(config: TqcConfig, models: dg.PartitionsDefinition) -> list:
    if len(config.judge_versions) < 2:
        return []
    min_kappa = config.agreement.min_kappa

    @dg.multi_asset_check(
        name=f"{AGREEMENT}_checks",
        specs=[
            check_spec(
                "kappa_per_criterion",
                AGREEMENT,
                f"Warns when the judges' weighted kappa on a criterion is below {min_kappa} (agreement.min_kappa): "
                "labels on that criterion are less trustworthy; consider consensus filtering.",
                models,
                blocking=False,
            )
        ],
        ins={AGREEMENT: stored(AGREEMENT)},
    )
    def judge_agreement_checks(judge_agreement: pl.DataFrame):
        low = judge_agreement.filter((pl.col("criterion") != OVERALL) & (pl.col("weighted_kappa") < min_kappa))
        yield dg.AssetCheckResult(
            asset_key=AGREEMENT,
            check_name="kappa_per_criterion",
            severity=dg.AssetCheckSeverity.WARN,
            **passed_or_explained(low.height == 0, f"weighted kappa below {min_kappa} on criteria "
                                  f"{', '.join(f'{a}/{b}:{c}' for a, b, c in low.select('judge_a', 'judge_b', 'criterion').iter_rows())} "
                                  "(see below_min_kappa): the judges disagree there; consider consensus: {policy: label}."),
            metadata={"below_min_kappa": table_metadata(low.select("judge_a", "judge_b", "criterion", "criterion_name", "n_both", "weighted_kappa"), 50)},
        )

    return [judge_agreement_checks]
