"""Materializing the graph from the command line, on a persistent instance, and summarizing what it made."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import click
import dagster as dg
import polars as pl

from tqc_dagster.assets.exports import EXPORTS, SPLITS, export_folder
from tqc_dagster.assets.agreement import AGREEMENT
from tqc_dagster.assets.ingest import QUARANTINED, RECORDS
from tqc_dagster.config import ConfigError, TqcConfig
from tqc_dagster.core.rubric import TARGET_MODELS
from tqc_dagster.definitions import STAGES, build_definitions
from tqc_dagster.partitions import partition_key, split_key
from tqc_dagster.resources.storage import asset_path
from tqc_dagster.stores import SUCCESS_MARKER, input_files, join, s3_resource, store_for


# Dagster's console logger prints every event at DEBUG; the summary below says what matters.
QUIET_CONSOLE = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@dataclass
class PartitionRun:
    partition: str
    run_id: str
    success: bool
    failed_checks: list[str] = field(default_factory=list)


@dataclass
class RunOutcome:
    runs: list[PartitionRun]
    asset_names: list[str]

    @property
    def success(self) -> bool:
        return all(run.success and not run.failed_checks for run in self.runs)


def selected_partitions(config: TqcConfig, requested: list[str]) -> list[dg.MultiPartitionKey]:
    everything = [partition_key(jv, model) for jv in config.judge_version_names for model in config.model_names]
    if not requested:
        return everything
    known = {str(key) for key in everything}
    unknown = [key for key in requested if key not in known]
    if unknown:
        raise ConfigError(f"unknown partition(s) {unknown}; known: {sorted(known)}")
    return [key for key in everything if str(key) in requested]


def materialize_partitions(config: TqcConfig, requested: list[str], selection: str | None, home: Path) -> RunOutcome:
    """The selected assets, stage by stage (see STAGES), one in-process run per partition, on the instance at `home`."""
    os.environ["DAGSTER_HOME"] = str(home)
    defs = build_definitions(config)
    all_names = sorted(key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys())
    names = [name.strip() for name in selection.split(",") if name.strip()] if selection else all_names
    unknown = sorted(set(names) - set(all_names))
    if unknown:
        raise ConfigError(f"unknown asset(s) {unknown} in --select; known: {all_names}")
    keys = selected_partitions(config, requested)
    chosen_keys = {split_key(key) for key in keys}
    partitions = {
        "judge_version": sorted({judge_version for judge_version, _ in chosen_keys}),
        "sample": keys,
        # Agreement compares two judge versions: only for models whose partitions of both are in this run.
        "model": sorted({model for _, model in chosen_keys if all((judge, model) in chosen_keys for judge in config.agreement.judges)}),
    }
    if RECORDS in names:
        for judge_version in partitions["judge_version"]:
            input_files(config, judge_version)
    runs = []
    with dg.DagsterInstance.get() as instance:
        for stage in STAGES:
            chosen = [name for name in stage.assets if name in names]
            for key in partitions[stage.partitions] if chosen else []:
                click.echo(f"materializing {', '.join(chosen)} for {key} ...")
                result = defs.resolve_job_def(stage.job).execute_in_process(
                    partition_key=key,
                    instance=instance,
                    asset_selection=[dg.AssetKey(name) for name in chosen],
                    raise_on_error=False,
                    run_config=QUIET_CONSOLE,
                )
                failed = [
                    f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
                    for evaluation in result.get_asset_check_evaluations()
                    if not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR
                ]
                runs.append(PartitionRun(f"{stage.job} {key}", result.run_id, result.success, failed))
    return RunOutcome(runs, names)


def stored_paths(config: TqcConfig, asset: str) -> dict[str, str]:
    """The stored files of a judge_version x model asset by partition key (partitions not materialized are left out)."""
    store = store_for(config.storage_root, s3_resource(config))
    paths = {
        f"{judge_version}|{model}": asset_path(config.storage_root, asset, judge_version, model)
        for judge_version in config.judge_version_names
        for model in config.model_names
    }
    return {partition: path for partition, path in paths.items() if store.exists(path)}


def stored_partitions(config: TqcConfig, asset: str) -> dict[str, pl.DataFrame]:
    store = store_for(config.storage_root, s3_resource(config))
    return {partition: store.read_parquet(path) for partition, path in stored_paths(config, asset).items()}


def stored_rows(config: TqcConfig, asset_names: list[str]) -> pl.DataFrame:
    """Rows of every stored (asset, partition) file, from the parquet footers."""
    store = store_for(config.storage_root, s3_resource(config))
    rows = [
        {"asset": asset, "partition": partition, "rows": store.parquet_rows(path)}
        for asset in asset_names
        if asset not in (EXPORTS, RECORDS, AGREEMENT)
        for partition, path in stored_paths(config, asset).items()
    ]
    return pl.DataFrame(rows, schema={"asset": pl.String, "partition": pl.String, "rows": pl.Int64})


def quarantine_by_reason(config: TqcConfig) -> pl.DataFrame:
    frames = stored_partitions(config, QUARANTINED)
    if not frames:
        return pl.DataFrame()
    return (
        pl.concat([frame.with_columns(pl.lit(partition).alias("partition")) for partition, frame in frames.items()])
        .pivot(on="partition", index="reason", values="record_id", aggregate_function="len", sort_columns=True)
        .fill_null(0)
        .sort("reason")
    )


def export_counts(config: TqcConfig) -> pl.DataFrame:
    """Lines per export file kind and split, per judge version and target model (finished exports only)."""
    store = store_for(config.storage_root, s3_resource(config))
    rows = []
    for judge_version in config.judge_version_names:
        for target_model in TARGET_MODELS:
            folder = export_folder(config.storage_root, judge_version, target_model)
            if not store.exists(join(folder, SUCCESS_MARKER)):
                continue
            for split in SPLITS:
                counts = {}
                for kind in ("sft", "llamafactory", "bedrock"):
                    with store.local_copy(join(folder, kind, f"{split}.jsonl")) as path:
                        counts[kind] = _lines(path)
                counts["grpo"] = store.parquet_rows(join(folder, "grpo", f"{split}.parquet"))
                rows.append({"judge_version": judge_version, "target_model": target_model, "split": split, **counts})
    return pl.DataFrame(rows)


def _lines(path: str) -> int:
    with open(path, "rb") as handle:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))


def print_summary(config: TqcConfig, outcome: RunOutcome) -> None:
    with pl.Config(tbl_rows=200, tbl_cols=20, tbl_width_chars=200, tbl_hide_column_data_types=True, tbl_hide_dataframe_shape=True):
        click.echo("\nruns:")
        for run in outcome.runs:
            status = "ok" if run.success and not run.failed_checks else "FAILED"
            checks = f" (failed checks: {', '.join(run.failed_checks)})" if run.failed_checks else ""
            click.echo(f"  {run.partition:<24} {status}{checks}  run {run.run_id}")
        rows = stored_rows(config, outcome.asset_names)
        if rows.height:
            click.echo("\nrows per asset and partition:")
            click.echo(rows.pivot(on="partition", index="asset", values="rows", sort_columns=True))
        reasons = quarantine_by_reason(config)
        if reasons.height:
            click.echo("\nquarantined (record, model) pairs by reason:")
            click.echo(reasons)
        exported = export_counts(config)
        if exported.height:
            click.echo("\nexport lines per judge version, target model and split:")
            click.echo(exported)
        click.echo(f"\nfiles: {config.storage_root}/<asset>/<judge_version>/<model>.parquet")
        click.echo(f"exports: {config.storage_root}/{EXPORTS}/<judge_version>/<target_model>/ (sft, llamafactory, bedrock, grpo, README.md)")
