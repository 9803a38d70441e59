"""judge_agreement: how far two judge generations agree, per translation model."""

import dagster as dg
import polars as pl

from tqc_dagster.assets.ingest import PROCESSED
from tqc_dagster.assets.charts import kappa_by_criterion
from tqc_dagster.assets import OWNERS, storage_kinds
from tqc_dagster.assets.metadata import column_schema, table_metadata
from tqc_dagster.config import TqcConfig
from tqc_dagster.core.agreement import OVERALL, agreement, most_disagreeing, paired
from tqc_dagster.partitions import FOLLOW_UPSTREAM, every_judge_version_of_a_model
from tqc_dagster.schemas import JudgeAgreement

AGREEMENT = "judge_agreement"


def build_agreement_assets(config: TqcConfig, models: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    if len(config.judge_versions) < 2:
        return []
    first, second = config.agreement.judges
    thresholds = config.labels
    min_kappa = config.agreement.min_kappa

    @dg.asset(
        name=AGREEMENT,
        group_name="agreement",
        kinds=storage_kinds(config.storage_root),
        owners=OWNERS["agreement"],
        partitions_def=models,
        automation_condition=FOLLOW_UPSTREAM,
        ins={PROCESSED: dg.AssetIn(partition_mapping=every_judge_version_of_a_model())},
        description=f"Agreement of judge {first} and judge {second} on the same translations of this model: per criterion "
        "and overall, coverage, Cohen's quadratic-weighted kappa on score buckets, Spearman correlation of scores, "
        "label agreement and the label confusion matrix.",
        metadata=column_schema(JudgeAgreement),
    )
    def judge_agreement(processed_samples: pl.DataFrame):
        by_version = processed_samples.partition_by("judge_version", as_dict=True)
        pairs = paired(by_version.get((first,), processed_samples.clear()), by_version.get((second,), processed_samples.clear()))
        table = agreement(pairs, thresholds)
        JudgeAgreement.validate(table)
        overall = table.filter(pl.col("criterion") == OVERALL).row(0, named=True)
        yield dg.Output(
            table,
            metadata={
                "judges": f"{first} vs {second}",
                "dagster/row_count": table.height,
                **{
                    f"kappa_criterion_{criterion}": dg.MetadataValue.float(round(kappa, 6))
                    for criterion, kappa in table.filter(pl.col("criterion") != OVERALL).select("criterion", "weighted_kappa").iter_rows()
                    if kappa is not None
                },
                "n_both": overall["n_both"],
                "overall_label_agreement": dg.MetadataValue.float(overall["label_agreement"] or 0.0),
                "kappa_chart": kappa_by_criterion(table.filter(pl.col("criterion") != OVERALL), min_kappa),
                "agreement": table_metadata(table, 10),
                "most_disagreeing": table_metadata(most_disagreeing(pairs).drop("scores_a", "scores_b"), 20),
            },
        )

    return [judge_agreement]
