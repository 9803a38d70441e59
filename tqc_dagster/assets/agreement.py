"""judge_agreement: how far the judge generations of agreement.judges agree, pair by pair, per translation model."""

import dagster as dg
import polars as pl

from tqc_dagster.assets.ingest import PROCESSED
from tqc_dagster.assets.charts import kappa_by_criterion
from tqc_dagster.assets import OWNERS, storage_kinds
from tqc_dagster.assets.metadata import column_schema, table_metadata
from tqc_dagster.config import TqcConfig
from tqc_dagster.core.agreement import OVERALL, most_disagreeing, pairwise
from tqc_dagster.partitions import FOLLOW_UPSTREAM, every_judge_version_of_a_model
from tqc_dagster.schemas import JudgeAgreement

AGREEMENT = "judge_agreement"


def build_agreement_assets(config: TqcConfig, models: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    if len(config.judge_versions) < 2:
        return []
    judges = config.agreement.judges
    first, second = judges[:2]  # the pair whose kappas are plotted over time (kappa_criterion_*) and charted
    thresholds = config.labels
    min_kappa = config.agreement.min_kappa

    @dg.asset(
        name=AGREEMENT,
        group_name="agreement",
        kinds=storage_kinds(config.storage_root),
        owners=OWNERS["agreement"],
        partitions_def=models,
        automation_condition=FOLLOW_UPSTREAM,
        # Every judge version of the model is mapped; a version outside agreement.judges that is not ingested yet
        # (a new judge_from version being judged) is left out instead of stopping the agreement of the others.
        ins={PROCESSED: dg.AssetIn(partition_mapping=every_judge_version_of_a_model(), metadata={"allow_missing_partitions": True})},
        description=f"Agreement of every pair of judges {', '.join(judges)} on the same translations of this model (judge_a, "
        "judge_b): per criterion "
        "and overall, coverage, Cohen's quadratic-weighted kappa on score buckets, Spearman correlation of scores, "
        "label agreement and the label confusion matrix.",
        metadata=column_schema(JudgeAgreement),
    )
    def judge_agreement(context: dg.AssetExecutionContext, processed_samples: pl.DataFrame):
        absent = sorted(set(judges) - set(processed_samples.get_column("judge_version").unique().to_list()))
        if absent:
            raise dg.Failure(
                f"judge_agreement {context.partition_key}: no processed_samples of judge version(s) {', '.join(absent)} "
                "(agreement.judges); ingest them first, or leave them out of agreement.judges",
                allow_retries=False,
            )
        table, pairs = pairwise(processed_samples, judges, thresholds)
        JudgeAgreement.validate(table)
        lead = table.filter((pl.col("judge_a") == first) & (pl.col("judge_b") == second))
        overall = lead.filter(pl.col("criterion") == OVERALL).row(0, named=True)
        kappas = table.filter(pl.col("criterion") != OVERALL).pivot("criterion", index=["judge_a", "judge_b"], values="weighted_kappa")
        yield dg.Output(
            table,
            metadata={
                "judges": ", ".join(judges),
                "dagster/row_count": table.height,
                **{
                    f"kappa_criterion_{criterion}": dg.MetadataValue.float(round(kappa, 6))
                    for criterion, kappa in lead.filter(pl.col("criterion") != OVERALL).select("criterion", "weighted_kappa").iter_rows()
                    if kappa is not None
                },
                "n_both": overall["n_both"],
                "overall_label_agreement": dg.MetadataValue.float(overall["label_agreement"] or 0.0),
                "kappa_chart": kappa_by_criterion(lead.filter(pl.col("criterion") != OVERALL), min_kappa),
                "kappa_by_pair": table_metadata(kappas, 50),
                "agreement": table_metadata(table, 10 * len(pairs)),
                "most_disagreeing": table_metadata(most_disagreeing(pairs[(first, second)]).drop("scores_a", "scores_b"), 20),
            },
        )

    return [judge_agreement]
