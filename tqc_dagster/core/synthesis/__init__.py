"""Synthesis: topping up rare groups of the simple model with synthetic samples.

A backend takes the judged samples of a partition and the deficits (groups below
`min_samples` and how many samples each needs) and returns synthetic samples with the same
columns as judged ones, plus a per-group report of what it made and what it could not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import polars as pl

from tqc_dagster.core.judgments import Thresholds, with_derived_columns
from tqc_dagster.core.rubric import SIMPLE, SYNTHETIC

GROUP_KEYS = ["product_category", "criterion", "score_bucket"]


def deficits(samples: pl.DataFrame, min_samples: int) -> pl.DataFrame:
    """Synthesis groups of the simple model with fewer than `min_samples` samples, and how many each needs.

    Only groups that occur in the judged data are topped up: a group with no judged sample has
    no evidence that the judge ever sees such a defect in that category.
    """
    return (
        samples.filter(pl.col("target_model") == SIMPLE)
        .group_by(GROUP_KEYS)
        .agg(pl.len().cast(pl.Int64).alias("samples"))
        .filter(pl.col("samples") < min_samples)
        .with_columns((min_samples - pl.col("samples")).alias("needed"))
        .sort(GROUP_KEYS)
    )


@dataclass(frozen=True)
class SynthesisOutput:
    samples: pl.DataFrame
    report: pl.DataFrame  # GROUP_KEYS, samples, needed, made, unfilled, why


class SynthesisBackend(Protocol):
    name: str

    def synthesize(self, judged: pl.DataFrame, wanted: pl.DataFrame, seed: int) -> SynthesisOutput: ...


def shortfalls(synthetic: pl.DataFrame, wanted: pl.DataFrame) -> pl.DataFrame:
    """The wanted groups that synthesis left short: GROUP_KEYS, samples, needed, made, short (> 0), by group.

    `made` counts the synthetic rows stored in the group, so this is checked on what was written.
    """
    made = synthetic.filter(pl.col("origin") == SYNTHETIC).group_by(GROUP_KEYS).agg(pl.len().cast(pl.Int64).alias("made"))
    return (
        wanted.join(made, on=GROUP_KEYS, how="left")
        .with_columns(pl.col("made").fill_null(0))
        .with_columns((pl.col("needed") - pl.col("made")).alias("short"))
        .filter(pl.col("short") > 0)
        .sort(GROUP_KEYS)
    )


def rows_outside_their_group(synthetic: pl.DataFrame, wanted: pl.DataFrame, thresholds: Thresholds) -> pl.DataFrame:
    """Synthetic rows whose scores, derived afresh, do not put them in a wanted group (empty when all fit)."""
    derived = with_derived_columns(synthetic.select(pl.exclude("criterion", "score_bucket", "target_model", "label", "min_score")), thresholds)
    fits = (pl.col("origin") == SYNTHETIC) & (pl.col("target_model") == SIMPLE)
    inside = derived.filter(fits).join(wanted.select(GROUP_KEYS), on=GROUP_KEYS, how="semi")
    return synthetic.join(inside.select("sample_id"), on="sample_id", how="anti")
