"""Parquet storage of asset partitions under the storage root: `<root>/<asset>/<judge_version>/<model>.parquet`.

The root is a local folder or `s3://bucket/prefix`; the same layout either way.
"""

from __future__ import annotations

import dagster as dg
import polars as pl
from dagster_aws.s3 import S3Resource

from tqc_dagster.partitions import split_key
from tqc_dagster.stores import join, store_for


def asset_path(storage_root: str, asset_name: str, judge_version: str, model: str | None = None) -> str:
    """`<root>/<asset>/<judge_version>/<model>.parquet`, or `<root>/<asset>/<judge_version>.parquet` per judge version."""
    if model is None:
        return join(storage_root, asset_name, f"{judge_version}.parquet")
    return join(storage_root, asset_name, judge_version, f"{model}.parquet")


class MissingPartitionError(FileNotFoundError):
    """An upstream partition has not been materialized yet."""


class ParquetIOManager(dg.ConfigurableIOManager):
    """Stores each (judge_version, model) partition of an asset as one parquet file, written atomically."""

    storage_root: str
    s3: S3Resource

    @property
    def store(self):
        return store_for(self.storage_root, self.s3)

    def _path(self, context: dg.OutputContext | dg.InputContext, key: str) -> str:
        judge_version, model = split_key(key) if "|" in str(key) else (str(key), None)
        return asset_path(self.storage_root, context.asset_key.path[-1], judge_version, model)

    def handle_output(self, context: dg.OutputContext, obj: pl.DataFrame) -> None:
        path = self._path(context, context.asset_partition_key)
        self.store.write_parquet(obj, path)
        context.add_output_metadata({"path": dg.MetadataValue.path(path)})

    def load_input(self, context: dg.InputContext) -> pl.DataFrame:
        """One partition, or all the mapped upstream partitions concatenated (e.g. both models of a judge version)."""
        store = self.store
        frames = []
        for key in sorted(context.asset_partition_keys):
            path = self._path(context, key)
            if not store.exists(path):
                raise MissingPartitionError(
                    f"{context.asset_key.to_user_string()} partition {key} is not materialized yet ({path}); "
                    f"materialize it first, e.g. tqc run --partition '{key}'"
                )
            frames.append(store.read_parquet(path))
        return pl.concat(frames)
