"""The leak-free train/test split: a sample's side is a pure function of its normalized source and the seed.

So a title lands on the same side in every partition, judge version and rerun, and no title
can be on both sides. Synthetic samples only ever go to train, and one whose source would
belong to test is dropped rather than leaking the title into training.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

import polars as pl

from tqc_dagster.core.hashing import stable_hash
from tqc_dagster.core.rubric import JUDGED, SYNTHETIC

HASH_SPACE = 2.0**64


def normalize_source(text: str) -> str:
    """Unicode NFKC, case-folded, whitespace collapsed: two titles that differ only in those are one title.

    NFKC again after folding (Unicode's NFKC_Casefold), since folding can undo a composition.
    """
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    return " ".join(folded.split())


def _side_keys(sources: list[str], seed: int) -> pl.Series:
    return pl.Series([f"{seed}\x1f{normalize_source(s)}" for s in sources], dtype=pl.String)


def source_is_test(source: str, test_ratio: float, seed: int) -> bool:
    """The side of one title (e.g. a title an LLM just proposed)."""
    return bool((stable_hash(_side_keys([source], seed)).cast(pl.Float64) / HASH_SPACE < test_ratio)[0])


def _test_side(sources: pl.Series, test_ratio: float, seed: int) -> pl.Series:
    unique = sources.unique()
    is_test = (stable_hash(_side_keys(unique.to_list(), seed)).cast(pl.Float64) / HASH_SPACE) < test_ratio
    lookup = pl.DataFrame({"source": unique, "is_test": is_test})
    return pl.DataFrame({"source": sources}).join(lookup, on="source", how="left", maintain_order="left")["is_test"]


def is_test_source(source: pl.Expr, test_ratio: float, seed: int) -> pl.Expr:
    """True when a source belongs to the test side (computed once per distinct source)."""
    return source.map_batches(lambda s: _test_side(s, test_ratio, seed), return_dtype=pl.Boolean)


def normalized_source(source: pl.Expr) -> pl.Expr:
    return source.map_batches(
        lambda s: pl.Series([normalize_source(v) for v in s.to_list()], dtype=pl.String), return_dtype=pl.String
    )


@dataclass(frozen=True)
class SplitResult:
    train: pl.DataFrame
    test: pl.DataFrame
    synthetic_dropped: int


def split_samples(judged: pl.DataFrame, synthetic: pl.DataFrame, test_ratio: float, seed: int) -> SplitResult:
    """Judged samples go to the side of their source; synthetic ones to train unless their source is a test source."""
    side = is_test_source(pl.col("source"), test_ratio, seed)
    judged = judged.filter(pl.col("origin") == JUDGED).with_columns(side.alias("_test"))
    synthetic = synthetic.filter(pl.col("origin") == SYNTHETIC).with_columns(side.alias("_test"))
    kept_synthetic = synthetic.filter(~pl.col("_test"))
    train = pl.concat([judged.filter(~pl.col("_test")), kept_synthetic]).drop("_test")
    test = judged.filter(pl.col("_test")).drop("_test")
    return SplitResult(train, test, synthetic.height - kept_synthetic.height)


def realized_test_share(train: pl.DataFrame, test: pl.DataFrame, by: list[str]) -> pl.DataFrame:
    """Realized test share per group, judged samples only (synthetic rows never enter test)."""
    both = pl.concat([train.with_columns(pl.lit(False).alias("test")), test.with_columns(pl.lit(True).alias("test"))])
    return (
        both.filter(pl.col("origin") == JUDGED)
        .group_by(by)
        .agg(pl.len().alias("samples"), pl.col("test").mean().round(4).alias("test_share"))
        .sort(by, nulls_last=False)
    )


def shared_sources(train: pl.DataFrame, test: pl.DataFrame) -> pl.DataFrame:
    """Normalized sources present on both sides (empty when the split is leak-free)."""
    key = normalized_source(pl.col("source")).alias("normalized_source")
    return train.select(key).unique().join(test.select(key).unique(), on="normalized_source").sort("normalized_source")
