"""Balancing the training set: per balance group, as many positives as negatives, drawn with the seed.

Balance groups: each criterion 0..5 of the simple model, and the complex model as one group
(criterion 6 and flawless samples together).
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from tqc_dagster.core.hashing import stable_hash_expr
from tqc_dagster.core.rubric import COMPLEX

NEGATIVE, POSITIVE = "negative", "positive"


def balance_group() -> pl.Expr:
    """`simple/<criterion>` or `complex`."""
    return (
        pl.when(pl.col("target_model") == COMPLEX)
        .then(pl.lit(COMPLEX))
        .otherwise(pl.concat_str(pl.col("target_model"), pl.col("criterion").cast(pl.String), separator="/"))
        .alias("balance_group")
    )


def _draw_order(seed: int) -> pl.Expr:
    """A seeded random but reproducible order: rank by the stable hash of seed and sample id."""
    return stable_hash_expr(pl.concat_str(pl.lit(str(seed)), pl.col("sample_id"), separator="|"))


@dataclass(frozen=True)
class BalanceResult:
    balanced: pl.DataFrame
    report: pl.DataFrame  # per group: negatives_available, negatives_kept, positives_available, positives_kept, shortfall


def balance(train: pl.DataFrame, seed: int, max_per_category: int | None = None) -> BalanceResult:
    """Keep the negatives (capped at max_per_category) and draw the same number of positives per group.

    Where a group has fewer positives than kept negatives, all positives are kept and the
    difference is reported as the group's shortfall.
    """
    ordered = train.with_columns(balance_group(), _draw_order(seed).alias("_order")).sort("balance_group", "label", "_order")
    negatives = (pl.col("label") == NEGATIVE).sum().over("balance_group")
    quota = negatives if max_per_category is None else pl.min_horizontal(negatives, max_per_category)
    kept = ordered.filter(pl.int_range(pl.len()).over("balance_group", "label") < quota)
    report = (
        ordered.group_by("balance_group")
        .agg(
            (pl.col("label") == NEGATIVE).sum().alias("negatives_available"),
            (pl.col("label") == POSITIVE).sum().alias("positives_available"),
        )
        .join(
            kept.group_by("balance_group").agg(
                (pl.col("label") == NEGATIVE).sum().alias("negatives_kept"),
                (pl.col("label") == POSITIVE).sum().alias("positives_kept"),
            ),
            on="balance_group",
            how="left",
        )
        .fill_null(0)
        .with_columns((pl.col("negatives_kept").cast(pl.Int64) - pl.col("positives_kept").cast(pl.Int64)).alias("shortfall"))
        .sort("balance_group")
    )
    return BalanceResult(kept.drop("_order", "balance_group").sort("sample_id"), report)


def balance_violations(balanced: pl.DataFrame, train: pl.DataFrame) -> pl.DataFrame:
    """Groups whose positives differ from their negatives although more positives were available."""

    def tally(frame: pl.DataFrame, prefix: str) -> pl.DataFrame:
        return frame.group_by(balance_group()).agg(
            (pl.col("label") == NEGATIVE).sum().alias(f"{prefix}negatives"),
            (pl.col("label") == POSITIVE).sum().alias(f"{prefix}positives"),
        )

    joined = tally(balanced, "").join(tally(train, "available_"), on="balance_group", how="full", coalesce=True).fill_null(0)
    return joined.filter(pl.col("positives") != pl.min_horizontal("negatives", "available_positives")).sort("balance_group")
