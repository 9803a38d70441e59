"""A hash that stays the same across machines, runs and library versions.

polars' own `hash` is only stable within one polars version; sample ids and the train/test
side of a title must survive upgrades, so they use BLAKE2b.
"""

from hashlib import blake2b

import polars as pl


def _digest(value: str) -> int:
    return int.from_bytes(blake2b(value.encode("utf-8"), digest_size=8).digest(), "big")


def stable_hash(values: pl.Series) -> pl.Series:
    """64-bit BLAKE2b of each string (null stays null)."""
    return pl.Series(values.name, [None if v is None else _digest(v) for v in values.to_list()], dtype=pl.UInt64)


def stable_hash_expr(expr: pl.Expr) -> pl.Expr:
    return expr.map_batches(stable_hash, return_dtype=pl.UInt64)


def stable_id_expr(expr: pl.Expr) -> pl.Expr:
    """A 16-hex-digit id from the stable hash."""
    return stable_hash_expr(expr).map_batches(
        lambda hashes: pl.Series(hashes.name, [None if h is None else f"{h:016x}" for h in hashes.to_list()], dtype=pl.String),
        return_dtype=pl.String,
    )
