"""The frame every perturbation family reads (`prepare`), a family's shape (`Family`), and the polars expression
helpers the families share (perturbations.py, format_damage.py).

A base's tokens are words with the space before them (`TOKEN`); `T`, `TOK` and `N` are its text, tokens and
token count as columns of the prepared frame.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import polars as pl

TOKEN = r"\s*(?:\p{Han}{1,2}|[^\s\p{Han}]+)"  # a word with the space before it; Chinese (no spaces) by two characters
SOURCE_TOKEN = r"\s*\S+"
LATIN_WORD = r"[A-Za-z][A-Za-z'-]{2,}"
NUMBER = r"\b\d+(?:\.\d+)?\b"  # a standalone number: not the 3 of "D3"
NATIVE = r"[^\x00-\x7F]"  # a word of the target language has a non-ASCII letter (sources are English)
MAX_NUMBERS = 3  # quantities a family can change in one title


class Family(NamedTuple):
    """The perturbations of one (simple criterion, score bucket), as expressions over the prepared frame."""

    capacity: pl.Expr  # Int64: distinct variants this base can give (0: cannot show it)
    make: Callable[[pl.Expr], tuple[pl.Expr, pl.Expr]]  # variant number -> (text, defect)
    # Columns `make` reads, added in this order first (variant number -> expressions); spelled out as
    # columns, a deep expression is computed once instead of once per use.
    stages: tuple[Callable[[pl.Expr], list[pl.Expr]], ...] = ()

    def apply(self, frame: pl.DataFrame, variant: str) -> tuple[pl.DataFrame, pl.Expr, pl.Expr]:
        """`frame` with the stages' columns, and the (text, defect) expressions of its `variant` column."""
        for stage in self.stages:
            frame = frame.with_columns(stage(pl.col(variant)))
        text, defect = self.make(pl.col(variant))
        return frame, text, defect


T, TOK, N = pl.col("_t"), pl.col("_tok"), pl.col("_n")


def _missing_words(bases: pl.DataFrame) -> pl.Series:
    """Per base, the source's Latin words (3+ letters) that its translation does not contain, once each, in source order."""
    rows = bases.select(pl.int_range(pl.len()).alias("_row"), "source", "translation")
    source = rows.select("_row", pl.col("source").str.extract_all(LATIN_WORD).alias("word")).explode("word", empty_as_null=False)
    kept = rows.select("_row", pl.col("translation").str.extract_all(LATIN_WORD).alias("word")).explode("word", empty_as_null=False)
    missing = (
        source.drop_nulls().join(kept.drop_nulls(), on=["_row", "word"], how="anti").unique(["_row", "word"], keep="first", maintain_order=True)
        .group_by("_row", maintain_order=True).agg("word")
    )
    per_base = rows.select("_row").join(missing, on="_row", how="left", maintain_order="left").get_column("word")
    return per_base.fill_null(pl.lit([], dtype=pl.List(pl.String))).cast(pl.List(pl.String)).alias("_words")


def prepare(bases: pl.DataFrame) -> pl.DataFrame:
    """The columns every family reads, computed once per base translation."""
    tok = pl.col("translation").str.extract_all(TOKEN)
    return bases.with_columns(tok.alias("_tok"), pl.col("source").str.extract_all(SOURCE_TOKEN).alias("_stok"), _missing_words(bases)).with_columns(
        pl.col("_tok").list.join("").alias("_t"),
        pl.col("_tok").list.len().cast(pl.Int64).alias("_n"),
        pl.col("_stok").list.len().cast(pl.Int64).alias("_ns"),
        pl.col("_tok").list.eval(pl.element().filter(pl.element().str.contains(NATIVE))).alias("_native"),
        pl.col("translation").str.extract_all(NUMBER).alias("_nums"),
        pl.col("_tok").list.eval(pl.element().str.len_chars().cum_sum()).cast(pl.List(pl.Int64)).alias("_ends"),
    ).with_columns(
        pl.col("_native").list.len().cast(pl.Int64).alias("_nn"),
        pl.col("_words").list.len().cast(pl.Int64).alias("_m"),
        pl.min_horizontal(pl.col("_nums").list.len().cast(pl.Int64), pl.lit(MAX_NUMBERS)).alias("_q"),
    )


# --- expression helpers -----------------------------------------------------------------------------------------


def pick(options: list[str], index: pl.Expr) -> pl.Expr:
    return pl.concat_list([pl.lit(option) for option in options]).list.get(index % len(options), null_on_oob=True)


def by_language(table: dict[str, list[str]], index: pl.Expr) -> pl.Expr:
    chosen = pl.when(pl.lit(False)).then(pl.lit(None, dtype=pl.String))
    for language, options in table.items():
        if language != "*":
            chosen = chosen.when(pl.col("target_lang") == language).then(pick(options, index))
    return chosen.otherwise(pick(table["*"], index))


def quoted(expr: pl.Expr) -> pl.Expr:
    return pl.concat_str(pl.lit("'"), expr, pl.lit("'"))


def num(expr: pl.Expr) -> pl.Expr:
    return expr.cast(pl.String)


def words(count: pl.Expr) -> pl.Expr:
    """'1 word' / '3 words'."""
    return pl.concat_str(num(count), pl.when(count == 1).then(pl.lit(" word")).otherwise(pl.lit(" words")))


def join(tokens: pl.Expr, separator: str = "") -> pl.Expr:
    """`tokens.list.join(separator)`, also on an empty frame: polars 1.44 fails to join a list sliced by an
    expression there (its dtype becomes null), which happens in every when/then branch that no row takes."""
    return pl.concat_list(tokens, pl.lit(pl.Series([[]], dtype=pl.List(pl.String)))).list.join(separator)


def glued(tokens: pl.Expr) -> pl.Expr:
    return join(tokens).str.strip_chars()


def insert(tokens: pl.Expr, at: pl.Expr, piece: pl.Expr) -> pl.Expr:
    """`piece` put before token `at` (at == len: at the end), with a space on both sides."""
    head = join(tokens.list.head(at))
    tail = join(tokens.list.slice(at)).str.strip_chars_start()
    return pl.concat_str(head, pl.lit(" "), piece, pl.lit(" "), tail).str.strip_chars()


def replace(tokens: pl.Expr, at: pl.Expr, count: pl.Expr, piece: pl.Expr) -> pl.Expr:
    """Tokens at..at+count replaced by `piece`."""
    return insert(pl.concat_list(tokens.list.head(at), tokens.list.slice(at + count)), at, piece)


def positive(expr: pl.Expr) -> pl.Expr:
    return pl.max_horizontal(expr, pl.lit(0, dtype=pl.Int64))
