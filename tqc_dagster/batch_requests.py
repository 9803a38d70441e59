"""Request files of Bedrock batch inference, shared by judging (assets/judging.py) and bulk synthesis
(assets/synthesis_batch.py): cut into files within the batch quotas, each written atomically, and read back.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import polars as pl

from tqc_dagster.config import S3
from tqc_dagster.core.judge_requests import cut_files, file_contents, file_name
from tqc_dagster.resources.storage import asset_path
from tqc_dagster.stores import join, store_for


def write_request_files(requests: pl.DataFrame, batch, s3: S3, folder: str, round_: int = 0) -> pl.DataFrame:
    """Cut `requests` (record_id, line, bytes) into files under `folder` within `batch`'s quotas (config_batch.BatchJobs:
    records_per_file, max_file_bytes, min_records_per_job; RequestError when they cannot be met) and write each atomically.

    Returns one row per record: record_id, round (`round_`), request_file, line_number, bytes, sha256 (of its file),
    sorted by file and line (the JudgeRequests / SynthesisRequests shape).
    """
    cut = cut_files(requests, batch.records_per_file, batch.max_file_bytes, batch.min_records_per_job)
    store = store_for(folder, s3)
    contents = file_contents(cut)
    names = {index: join(folder, file_name(index, len(contents), digest)) for index, _, digest in contents}
    with tempfile.TemporaryDirectory(prefix="tqc-requests-") as local:
        for index, data, _ in contents:
            path = Path(local, f"{index}.jsonl")
            path.write_bytes(data)
            store.write_file(str(path), names[index])
            path.unlink()
    files = pl.DataFrame(
        {"file": [i for i, _, _ in contents], "request_file": [names[i] for i, _, _ in contents], "sha256": [d for _, _, d in contents]},
        schema={"file": pl.Int64, "request_file": pl.String, "sha256": pl.String},
    )
    return (
        cut.join(files, on="file").select("record_id", pl.lit(round_, pl.Int64).alias("round"), "request_file", "line_number", "bytes", "sha256")
        .sort("request_file", "line_number")
    )


def request_files(requests: pl.DataFrame) -> pl.DataFrame:
    """One row per request file: request_file, sha256, records (from stored requests of `write_request_files`' shape)."""
    return requests.group_by("request_file", "sha256").agg(pl.len().cast(pl.Int64).alias("records")).sort("request_file")


def stored_asset(config, asset: str, *partition: str) -> pl.DataFrame | None:
    """The stored parquet of an asset partition (`config` a TqcConfig), None when it is not materialized."""
    path = asset_path(config.storage_root, asset, *partition)
    store = store_for(path, config.s3)
    return store.read_parquet(path) if store.exists(path) else None
