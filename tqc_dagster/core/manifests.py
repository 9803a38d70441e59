"""Bedrock job manifests (`manifest.json.out`): the job's own totals, to compare with what was read."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

MANIFEST_NAME = "manifest.json.out"


def manifest_comparison(lines: pl.DataFrame) -> pl.DataFrame:
    """Per job folder: non-blank lines read against the manifest's totalRecordCount (null when absent)."""
    read = (
        lines.group_by(pl.col("source_file").str.replace(r"/[^/]*$", "").alias("folder"))
        .agg(pl.col("line").is_not_null().sum().cast(pl.Int64).alias("lines_read"))
        .sort("folder")
    )
    totals = [
        {"folder": folder, "manifest_records": _total_records(Path(folder) / MANIFEST_NAME)}
        for folder in read.get_column("folder").to_list()
    ]
    manifest = pl.DataFrame(totals, schema={"folder": pl.String, "manifest_records": pl.Int64})
    return manifest.join(read, on="folder").with_columns(
        (pl.col("manifest_records") == pl.col("lines_read")).fill_null(False).alias("matches")
    )


def _total_records(path: Path) -> int | None:
    try:
        return int(json.loads(path.read_text())["totalRecordCount"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
