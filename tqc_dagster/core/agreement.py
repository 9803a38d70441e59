"""How much two judge generations agree, and training sets kept to what they agree on.

Samples of two judge versions are paired by (record_id, model). Per criterion: Cohen's
quadratic-weighted kappa on the score buckets, Spearman correlation of the scores, and
agreement on the label; overall: agreement on each sample's own label and target model.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import polars as pl

from tqc_dagster.core.judgments import Thresholds
from tqc_dagster.core.rubric import COMPLEX_CRITERION, CRITERIA, N_SCORES, SIMPLE, SIMPLE_CRITERIA

OVERALL = "overall"
CONFUSION = ("negative_negative", "negative_positive", "positive_negative", "positive_positive")


def paired(first: pl.DataFrame, second: pl.DataFrame) -> pl.DataFrame:
    """Samples judged by both versions: `_a` columns from `first`, `_b` from `second`."""
    keep = ["record_id", "model", "source", "translation", "scores", "target_model", "label", "criterion"]
    return first.select(keep).join(second.select(keep), on=["record_id", "model"], suffix="_b").rename(
        {name: f"{name}_a" for name in keep if name not in ("record_id", "model")}
    )


def quadratic_kappa(a: pl.Expr, b: pl.Expr) -> pl.Expr:
    """Cohen's kappa with quadratic weights, in closed form.

    With weights (i - j)^2 the expected disagreement of independent raters is
    Var(A) + Var(B) + (mean A - mean B)^2 (population moments), so
    kappa = 1 - mean((A - B)^2) / that. Null when both raters never vary.
    """
    a, b = a.cast(pl.Float64), b.cast(pl.Float64)
    expected = a.var(ddof=0) + b.var(ddof=0) + (a.mean() - b.mean()) ** 2
    return pl.when(expected > 0).then(1 - ((a - b) ** 2).mean() / expected)


def criterion_label(scores: pl.Expr, criterion: int, thresholds: Thresholds) -> pl.Expr:
    """The label a judge gives on one criterion: negative below its target model's threshold."""
    threshold = thresholds.complex if criterion == COMPLEX_CRITERION else thresholds.simple
    return pl.when(scores.list.get(criterion) < threshold).then(pl.lit("negative")).otherwise(pl.lit("positive"))


def _confusion(label_a: pl.Expr, label_b: pl.Expr) -> list[pl.Expr]:
    pair = pl.concat_str(label_a, label_b, separator="_")
    return [(pair == name).sum().cast(pl.Int64).alias(name) for name in CONFUSION]


def agreement(pairs: pl.DataFrame, thresholds: Thresholds) -> pl.DataFrame:
    """One row per criterion ("0".."6") and one "overall": n_both, weighted_kappa, spearman, label_agreement, confusion."""
    rows = []
    for criterion in range(N_SCORES):
        a, b = pl.col("scores_a").list.get(criterion), pl.col("scores_b").list.get(criterion)
        label_a, label_b = criterion_label(pl.col("scores_a"), criterion, thresholds), criterion_label(pl.col("scores_b"), criterion, thresholds)
        rows.append(
            pairs.select(
                pl.lit(str(criterion)).alias("criterion"),
                pl.lit(CRITERIA[criterion]).alias("criterion_name"),
                pl.len().cast(pl.Int64).alias("n_both"),
                quadratic_kappa(a.floor(), b.floor()).alias("weighted_kappa"),
                pl.corr(a, b, method="spearman").alias("spearman"),
                (label_a == label_b).mean().alias("label_agreement"),
                *_confusion(label_a, label_b),
            )
        )
    lowest_a, lowest_b = pl.col("scores_a").list.min(), pl.col("scores_b").list.min()
    rows.append(
        pairs.select(
            pl.lit(OVERALL).alias("criterion"),
            pl.lit("each sample's own label and target model").alias("criterion_name"),
            pl.len().cast(pl.Int64).alias("n_both"),
            quadratic_kappa(lowest_a.floor(), lowest_b.floor()).alias("weighted_kappa"),
            pl.corr(lowest_a, lowest_b, method="spearman").alias("spearman"),
            ((pl.col("label_a") == pl.col("label_b")) & (pl.col("target_model_a") == pl.col("target_model_b"))).mean().alias("label_agreement"),
            *_confusion(pl.col("label_a"), pl.col("label_b")),
        )
    )
    # A judge that never varies on a criterion has no rank correlation: null, not NaN.
    return pl.concat(rows).with_columns(pl.col("weighted_kappa", "spearman", "label_agreement").cast(pl.Float64).fill_nan(None).round(6))


def pairwise(samples: pl.DataFrame, judges: Sequence[str], thresholds: Thresholds) -> tuple[pl.DataFrame, dict[tuple[str, str], pl.DataFrame]]:
    """`agreement` of every pair of `judges` (in their order: (j0, j1), (j0, j2), ... (j1, j2), ...), stacked with
    `judge_a` and `judge_b` first; and the pairs of samples of each pair. `samples` holds every judge's samples
    (a `judge_version` column); a judge with none pairs with nothing (n_both 0)."""
    by_version = samples.partition_by("judge_version", as_dict=True)
    tables, pairs = [], {}
    for first, second in combinations(judges, 2):
        pairs[(first, second)] = paired(by_version.get((first,), samples.clear()), by_version.get((second,), samples.clear()))
        tables.append(agreement(pairs[(first, second)], thresholds).select(pl.lit(first).alias("judge_a"), pl.lit(second).alias("judge_b"), pl.all()))
    return pl.concat(tables), pairs


def most_disagreeing(pairs: pl.DataFrame, limit: int = 20) -> pl.DataFrame:
    """The pairs whose scores differ most (sum of absolute differences), for a look by eye."""
    gap = (pl.col("scores_a").list.to_array(N_SCORES) - pl.col("scores_b").list.to_array(N_SCORES)).arr.eval(pl.element().abs()).arr.sum()
    return (
        pairs.with_columns(gap.alias("score_gap"))
        .sort(["score_gap", "record_id"], descending=[True, False])
        .head(limit)
        .select("record_id", "model", "score_gap", "label_a", "label_b", "scores_a", "scores_b", pl.col("source_a").alias("source"), "translation_a", "translation_b")
    )


def _label_for(scores: pl.Expr, target_model: pl.Expr, thresholds: Thresholds) -> pl.Expr:
    """The label a judge's scores give for a target model: its lowest score on that model's criteria."""
    simple_low = pl.min_horizontal(*(scores.list.get(i) for i in SIMPLE_CRITERIA))
    complex_low = scores.list.min()
    return (
        pl.when(target_model == SIMPLE)
        .then(pl.when(simple_low < thresholds.simple).then(pl.lit("negative")).otherwise(pl.lit("positive")))
        .otherwise(pl.when(complex_low < thresholds.complex).then(pl.lit("negative")).otherwise(pl.lit("positive")))
    )


def consensus_mask(samples: pl.DataFrame, others: list[pl.DataFrame], policy: str, thresholds: Thresholds) -> pl.Series:
    """True for a sample every other judge version agrees with.

    `label`: the other judge's scores give the same label for this sample's target model.
    `bucket`: on this sample's criterion (6 for a flawless one) the score buckets differ by at most one.
    A sample another version never judged cannot be confirmed and is not kept.
    """
    keep = pl.Series("keep", [True] * samples.height)
    criterion = pl.col("criterion").fill_null(COMPLEX_CRITERION)
    for other in others:
        joined = samples.select("record_id", "model", "scores", "target_model", "label", "criterion").join(
            other.select("record_id", "model", pl.col("scores").alias("other_scores")), on=["record_id", "model"], how="left", maintain_order="left"
        )
        if policy == "label":
            agrees = _label_for(pl.col("other_scores"), pl.col("target_model"), thresholds) == pl.col("label")
        else:
            mine = pl.col("scores").list.get(criterion).floor()
            theirs = pl.col("other_scores").list.get(criterion).floor()
            agrees = (mine - theirs).abs() <= 1
        keep = keep & joined.select(agrees.fill_null(False)).to_series()
    return keep


def removed_by_criterion(samples: pl.DataFrame, keep: pl.Series) -> pl.DataFrame:
    return (
        samples.with_columns(keep.alias("_keep"))
        .group_by("target_model", "criterion")
        .agg(pl.len().alias("samples"), (~pl.col("_keep")).sum().alias("removed"))
        .sort("target_model", "criterion", nulls_last=False)
    )
