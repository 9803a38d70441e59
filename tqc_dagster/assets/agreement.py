"""judge_agreement: how far two judge generations agree, per translation model."""

import dagster as dg
import polars as pl

from tqc_dagster.assets.ingest import PROCESSED
from tqc_dagster.assets.charts import kappa_by_criterion
from tqc_dagster.assets import OWNERS
from tqc_dagster.assets.metadata import column_schema, markdown
from tqc_dagster.checks import check_spec
from tqc_dagster.config import TqcConfig
from tqc_dagster.core.agreement import OVERALL, agreement, most_disagreeing, paired
from tqc_dagster.core.judgments import Thresholds
from tqc_dagster.partitions import FOLLOW_UPSTREAM, every_judge_version_of_a_model
from tqc_dagster.schemas import JudgeAgreement

AGREEMENT = "judge_agreement"


def build_agreement_assets(config: TqcConfig, models: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    if len(config.judge_versions) < 2:
        return []
    first, second = config.agreement.judges
    thresholds = Thresholds(simple=config.labels.simple, complex=config.labels.complex)
    min_kappa = config.agreement.min_kappa

    @dg.asset(
        name=AGREEMENT,
        group_name="agreement",
        owners=OWNERS["agreement"],
        partitions_def=models,
        automation_condition=FOLLOW_UPSTREAM,
        ins={PROCESSED: dg.AssetIn(partition_mapping=every_judge_version_of_a_model())},
        description=f"Agreement of judge {first} and judge {second} on the same translations of this model: per criterion "
        "and overall, coverage, Cohen's quadratic-weighted kappa on score buckets, Spearman correlation of scores, "
        "label agreement and the label confusion matrix.",
        check_specs=[
            check_spec(
                "kappa_per_criterion",
                AGREEMENT,
                f"Warns when the judges' weighted kappa on a criterion is below {min_kappa} (agreement.min_kappa): "
                "labels on that criterion are less trustworthy; consider consensus filtering.",
                models,
                blocking=False,
            )
        ],
        metadata=column_schema(JudgeAgreement),
    )
    def judge_agreement(processed_samples: pl.DataFrame):
        by_version = processed_samples.partition_by("judge_version", as_dict=True)
        pairs = paired(by_version.get((first,), processed_samples.clear()), by_version.get((second,), processed_samples.clear()))
        table = agreement(pairs, thresholds)
        JudgeAgreement.validate(table)
        low = table.filter((pl.col("criterion") != OVERALL) & (pl.col("weighted_kappa") < min_kappa))
        overall = table.filter(pl.col("criterion") == OVERALL).row(0, named=True)
        yield dg.Output(
            table,
            metadata={
                "judges": f"{first} vs {second}",
                "n_both": overall["n_both"],
                "overall_label_agreement": dg.MetadataValue.float(overall["label_agreement"] or 0.0),
                "kappa_chart": kappa_by_criterion(table.filter(pl.col("criterion") != OVERALL), min_kappa),
                "agreement": markdown(table, 10),
                "most_disagreeing": markdown(most_disagreeing(pairs).drop("scores_a", "scores_b"), 20),
            },
        )
        yield dg.AssetCheckResult(
            check_name="kappa_per_criterion",
            passed=low.height == 0,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"below_min_kappa": markdown(low.select("criterion", "criterion_name", "n_both", "weighted_kappa"), 10)},
        )

    return [judge_agreement]
