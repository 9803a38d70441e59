"""Parquet storage of asset partitions under the storage root: `<root>/<asset>/<judge_version>/<model>.parquet`."""

from __future__ import annotations

import os
import uuid
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
        return pl.read_parquet(self._path(context, context.asset_partition_key))
