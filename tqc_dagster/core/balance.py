"""Balancing the training set: per balance group, as many positives as negatives, drawn with the seed.

Balance groups: each criterion 0..5 of the simple model, and the complex model as one group
(criterion 6 and flawless samples together).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import polars as pl

from tqc_dagster.core.hashing import stable_hash_expr
from tqc_dagster.core.rubric import COMPLEX, SYNTHETIC

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


def _turn() -> pl.Expr:
    """A synthetic row's turn: its rank in its synthesis group (product_category, criterion, score_bucket). Kept in
    that order after the judged rows, synthetic rows are taken round-robin over the rare groups, so a cap on the
    synthetic share thins every rare group evenly instead of dropping whole groups."""
    turn = pl.col("_order").rank("ordinal").over("product_category", "criterion", "score_bucket")
    return pl.when(pl.col("origin") == SYNTHETIC).then(turn).otherwise(0)


@dataclass(frozen=True)
class BalanceResult:
    balanced: pl.DataFrame
    # per group: negatives_available, negatives_kept, positives_available, positives_kept, shortfall,
    # synthetic_available, synthetic_kept, synthetic_share (of the kept rows)
    report: pl.DataFrame


def allowed_synthetic_positives(negatives: int, synthetic_negatives: int, judged_positives: int, share: float | None) -> int | None:
    """How many synthetic positives may join `negatives` kept negatives (`synthetic_negatives` of them synthetic) and
    the judged positives, so that the group's synthetic share stays within `share` (None: any number)."""
    if share is None or share >= 1:
        return None
    if judged_positives >= negatives:
        return 0
    return max(0, math.floor((share * (negatives + judged_positives) - synthetic_negatives) / (1 - share) + 1e-9))


def plan(judged_negatives: int, synthetic_negatives: int, judged_positives: int, synthetic_positives: int,
         max_negatives: int | None, share: float | None) -> tuple[int, int]:
    """(negatives, positives) to keep in a balance group: every judged negative (up to `max_negatives`), as many
    synthetic negatives as the synthetic `share` allows with the positives that balance them, and as many positives
    as negatives while there are positives (judged first) and the share allows."""
    top = judged_negatives + synthetic_negatives if max_negatives is None else min(judged_negatives + synthetic_negatives, max_negatives)
    floor_ = min(judged_negatives, top)
    for negatives in range(top, floor_ - 1, -1):
        synthetic = max(0, negatives - judged_negatives)
        positives = min(negatives, judged_positives + synthetic_positives)
        synthetic += max(0, positives - judged_positives)
        if share is None or synthetic <= share * (negatives + positives) + 1e-9:
            return negatives, positives
    allowed = allowed_synthetic_positives(floor_, 0, judged_positives, share)
    return floor_, min(floor_, judged_positives + min(synthetic_positives, allowed if allowed is not None else synthetic_positives))


def balance(train: pl.DataFrame, seed: int, max_per_category: int | None = None, max_synthetic_share: float | None = None) -> BalanceResult:
    """Keep the negatives (capped at max_per_category) and draw the same number of positives per group, with synthetic
    rows at most `max_synthetic_share` of a group (None: no cap).

    Judged rows are kept before synthetic ones; where a group has fewer positives than kept negatives (or the cap
    stops the synthetic positives), all that may be kept are and the difference is the group's shortfall.
    """
    ordered = (
        train.with_columns(balance_group(), _draw_order(seed).alias("_order"))
        .with_columns(_turn().alias("_turn"))
        .sort("balance_group", "label", pl.col("origin") == SYNTHETIC, "_turn", "_order")
    )
    synthetic = pl.col("origin") == SYNTHETIC
    tallies = ordered.group_by("balance_group").agg(
        ((pl.col("label") == NEGATIVE) & ~synthetic).sum().alias("jn"), ((pl.col("label") == NEGATIVE) & synthetic).sum().alias("sn"),
        ((pl.col("label") == POSITIVE) & ~synthetic).sum().alias("jp"), ((pl.col("label") == POSITIVE) & synthetic).sum().alias("sp"),
    )
    quotas = pl.DataFrame(
        [(group, *plan(jn, sn, jp, sp, max_per_category, max_synthetic_share)) for group, jn, sn, jp, sp in tallies.iter_rows()],
        schema={"balance_group": pl.String, "_negatives": pl.Int64, "_positives": pl.Int64},
        orient="row",
    )
    quota = pl.when(pl.col("label") == NEGATIVE).then(pl.col("_negatives")).otherwise(pl.col("_positives"))
    kept = ordered.join(quotas, on="balance_group", how="left").filter(pl.int_range(pl.len()).over("balance_group", "label") < quota)
    report = (
        ordered.group_by("balance_group")
        .agg(
            (pl.col("label") == NEGATIVE).sum().alias("negatives_available"),
            (pl.col("label") == POSITIVE).sum().alias("positives_available"),
            synthetic.sum().alias("synthetic_available"),
        )
        .join(
            kept.group_by("balance_group").agg(
                (pl.col("label") == NEGATIVE).sum().alias("negatives_kept"),
                (pl.col("label") == POSITIVE).sum().alias("positives_kept"),
                synthetic.sum().alias("synthetic_kept"),
            ),
            on="balance_group",
            how="left",
        )
        .fill_null(0)
        .with_columns(
            (pl.col("negatives_kept").cast(pl.Int64) - pl.col("positives_kept").cast(pl.Int64)).alias("shortfall"),
            (pl.col("synthetic_kept") / (pl.col("negatives_kept") + pl.col("positives_kept")).clip(1)).round(4).alias("synthetic_share"),
        )
        .select("balance_group", "negatives_available", "negatives_kept", "positives_available", "positives_kept", "shortfall",
                "synthetic_available", "synthetic_kept", "synthetic_share")
        .sort("balance_group")
    )
    return BalanceResult(kept.drop("_order", "_turn", "_negatives", "_positives", "balance_group").sort("sample_id"), report)


def balance_violations(balanced: pl.DataFrame, train: pl.DataFrame, max_synthetic_share: float | None = None) -> pl.DataFrame:
    """Groups whose positives differ from their negatives although more positives were available (judged ones, or
    synthetic ones the synthetic share allowed)."""
    synthetic = pl.col("origin") == SYNTHETIC

    def tally(frame: pl.DataFrame, prefix: str) -> pl.DataFrame:
        return frame.group_by(balance_group()).agg(
            (pl.col("label") == NEGATIVE).sum().alias(f"{prefix}negatives"),
            (pl.col("label") == POSITIVE).sum().alias(f"{prefix}positives"),
            ((pl.col("label") == NEGATIVE) & synthetic).sum().alias(f"{prefix}synthetic_negatives"),
            ((pl.col("label") == POSITIVE) & ~synthetic).sum().alias(f"{prefix}judged_positives"),
            ((pl.col("label") == POSITIVE) & synthetic).sum().alias(f"{prefix}synthetic_positives"),
        )

    joined = tally(balanced, "").join(tally(train, "available_"), on="balance_group", how="full", coalesce=True).fill_null(0)
    allowed = [
        row["available_positives"] if (cap := allowed_synthetic_positives(row["negatives"], row["synthetic_negatives"], row["available_judged_positives"], max_synthetic_share)) is None
        else row["available_judged_positives"] + min(cap, row["available_synthetic_positives"])
        for row in joined.iter_rows(named=True)
    ]
    return (
        joined.with_columns(pl.Series("allowed_positives", allowed, dtype=pl.Int64))
        .filter(pl.col("positives") != pl.min_horizontal("negatives", "allowed_positives"))
        .select("balance_group", "negatives", "positives", "available_negatives", "available_positives", "allowed_positives")
        .sort("balance_group")
    )


def over_synthetic_share(balanced: pl.DataFrame, max_synthetic_share: float | None) -> pl.DataFrame:
    """Balance groups whose synthetic share is above the cap (empty when within it, or without a cap)."""
    shares = balanced.group_by(balance_group()).agg(pl.len().alias("samples"), (pl.col("origin") == SYNTHETIC).sum().alias("synthetic"))
    if max_synthetic_share is None:
        return shares.clear()
    return shares.filter(pl.col("synthetic") > max_synthetic_share * pl.col("samples") + 1e-9).sort("balance_group")
