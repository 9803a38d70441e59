"""Parquet storage of asset partitions under the storage root: `<root>/<asset>/<judge_version>/<model>.parquet`.

The root is a local folder or `s3://bucket/prefix`; the same layout either way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import dagster as dg
import polars as pl

from tqc_dagster.blocking import assert_loadable
from tqc_dagster.config import S3
from tqc_dagster.partitions import split_key
from tqc_dagster.run_monitoring import this_process_tags
from tqc_dagster.stores import join, store_for


def asset_path(storage_root: str, asset_name: str, judge_version: str, model: str | None = None) -> str:
    """`<root>/<asset>/<judge_version>/<model>.parquet`, or `<root>/<asset>/<judge_version>.parquet` per judge version."""
    if model is None:
        return join(storage_root, asset_name, f"{judge_version}.parquet")
    return join(storage_root, asset_name, judge_version, f"{model}.parquet")


class MissingPartitionError(FileNotFoundError):
    """An upstream partition has not been materialized yet."""


class ParquetIOManager(dg.IOManager):
    """Stores each (judge_version, model) partition of an asset as one parquet file, written atomically.

    It loads an upstream partition only when that partition's blocking checks passed (blocking.py):
    whatever launched the run, nothing downstream is computed from data that failed its gate.
    """

    def __init__(self, storage_root: str, s3: S3, blocking_checks: Mapping[str, Sequence[dg.AssetCheckKey]]):
        self.storage_root = storage_root
        self.s3 = s3
        self.blocking_checks = blocking_checks

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
        """One partition, or all the mapped upstream partitions concatenated (e.g. both models of a judge version).

        Raises dg.Failure when a blocking check of one of them did not pass, and MissingPartitionError when one
        was never materialized, unless the input allows missing partitions (`AssetIn(metadata={"allow_missing_partitions":
        True})`, Dagster's UPathIOManager convention): those are then left out with a warning, and only when none is
        stored does loading fail.
        """
        asset = context.asset_key.to_user_string()
        store = self.store
        paths = {key: self._path(context, key) for key in sorted(context.asset_partition_keys)}
        missing = [key for key, path in paths.items() if not store.exists(path)]
        optional = bool((context.definition_metadata or {}).get("allow_missing_partitions"))
        if missing and (not optional or len(missing) == len(paths)):
            raise MissingPartitionError(
                f"{asset} partition {missing[0]} is not materialized yet ({paths[missing[0]]}); "
                f"materialize it first, e.g. tqc run --partition '{missing[0]}'"
            )
        if missing:
            context.log.warning(f"{asset}: partitions {', '.join(missing)} are not materialized yet; read without them")
        stored = [key for key in paths if key not in missing]
        assert_loadable(context.instance, stored, self.blocking_checks.get(asset, ()))
        return pl.concat([store.read_parquet(paths[key]) for key in stored])


def parquet_io_manager(storage_root: str, s3: S3, blocking_checks: Mapping[str, Sequence[dg.AssetCheckKey]]) -> dg.IOManagerDefinition:
    """The project's IO manager. Every step uses it, so its start also records the run's process in the
    run's tags (run_monitoring.py), which is how a run whose process died is found later."""

    @dg.io_manager(description="Parquet files under the storage root, written atomically; blocked partitions are not loaded.")
    def parquet(init_context: dg.InitResourceContext) -> ParquetIOManager:
        if init_context.instance is not None and init_context.run is not None:
            init_context.instance.add_run_tags(init_context.run.run_id, this_process_tags())
        return ParquetIOManager(storage_root, s3, blocking_checks)

    return parquet
