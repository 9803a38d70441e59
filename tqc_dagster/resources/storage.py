"""Parquet storage of asset partitions under the storage root: `<root>/<asset>/<judge_version>/<model>.parquet`."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import polars as pl

from tqc_dagster.partitions import split_key


def asset_path(storage_root: str, asset_name: str, judge_version: str, model: str) -> str:
    return str(Path(storage_root) / asset_name / judge_version / f"{model}.parquet")


def write_parquet_atomically(frame: pl.DataFrame, path: str) -> None:
    """Readers see the old file or the whole new one, never a partial file."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    temporary = f"{path}.tmp-{uuid.uuid4().hex}"
    try:
        frame.write_parquet(temporary, compression="zstd", statistics=True)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def publish_folder(target: str, write: Callable[[Path], None]) -> None:
    """Build a folder in a hidden staging folder beside it, then swap it in whole.

    A reader sees the previous folder or the finished new one, never a half-written export.
    """
    destination = Path(target)
    destination.parent.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex
    staging = destination.parent / f".{destination.name}.tmp-{token}"
    retired = destination.parent / f".{destination.name}.old-{token}"
    try:
        staging.mkdir()
        write(staging)
        if destination.exists():
            os.replace(destination, retired)
        os.replace(staging, destination)
    finally:
        for leftover in (staging, retired):
            if leftover.exists():
                shutil.rmtree(leftover)


class MissingPartitionError(FileNotFoundError):
    """An upstream partition has not been materialized yet."""


class ParquetIOManager(dg.ConfigurableIOManager):
    """Stores each (judge_version, model) partition of an asset as one parquet file."""

    storage_root: str

    def _path(self, context: dg.OutputContext | dg.InputContext, key: str) -> str:
        judge_version, model = split_key(key)
        return asset_path(self.storage_root, context.asset_key.path[-1], judge_version, model)

    def handle_output(self, context: dg.OutputContext, obj: pl.DataFrame) -> None:
        path = self._path(context, context.asset_partition_key)
        write_parquet_atomically(obj, path)
        context.add_output_metadata({"path": dg.MetadataValue.path(path)})

    def load_input(self, context: dg.InputContext) -> pl.DataFrame:
        """One partition, or all the mapped upstream partitions concatenated (e.g. both models of a judge version)."""
        frames = []
        for key in sorted(context.asset_partition_keys):
            path = self._path(context, key)
            if not os.path.exists(path):
                raise MissingPartitionError(
                    f"{context.asset_key.to_user_string()} partition {key} is not materialized yet ({path}); "
                    f"materialize it first, e.g. tqc run --partition '{key}'"
                )
            frames.append(pl.read_parquet(path))
        return pl.concat(frames)
