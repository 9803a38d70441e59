"""Bedrock job manifests (`manifest.json.out`): the job's own totals, to compare with what was read."""

from __future__ import annotations

import json

import polars as pl

MANIFEST_NAME = "manifest.json.out"


def total_records(manifest_text: str | None) -> int | None:
    """totalRecordCount of a manifest, or None when it is absent or unreadable."""
    try:
        return int(json.loads(manifest_text)["totalRecordCount"])
    except (TypeError, ValueError, KeyError):
        return None


def manifest_comparison(records: pl.DataFrame, manifest_totals: dict[str, int | None]) -> pl.DataFrame:
    """Per job folder: non-blank lines read (one record row each) against the manifest's totalRecordCount."""
    read = (
        records.group_by(pl.col("source_file").str.replace(r"/[^/]*$", "").alias("folder"))
        .agg(pl.len().cast(pl.Int64).alias("lines_read"))
        .sort("folder")
    )
    manifest = pl.DataFrame(
        {"folder": list(manifest_totals), "manifest_records": list(manifest_totals.values())},
        schema={"folder": pl.String, "manifest_records": pl.Int64},
    )
    return read.join(manifest, on="folder", how="left").with_columns(
        (pl.col("manifest_records") == pl.col("lines_read")).fill_null(False).alias("matches")
    ).select("folder", "manifest_records", "lines_read", "matches")
