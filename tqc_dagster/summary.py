"""The summary `tqc run` prints: each stage run's outcome and why, then what is stored, with results that this
invocation did not make marked stale."""

from __future__ import annotations

import click
import dagster as dg
import polars as pl

from tqc_dagster.assets.agreement import AGREEMENT
from tqc_dagster.assets.exports import EXPORTS, export_folder
from tqc_dagster.core.export_folder import SPLITS
from tqc_dagster.assets.ingest import QUARANTINED, RECORDS
from tqc_dagster.config import TqcConfig
from tqc_dagster.assets.samples import BALANCED, TESTSET
from tqc_dagster.core.dataset_card import synthetic_share, test_groups
from tqc_dagster.core.rubric import SIMPLE, SYNTHETIC, TARGET_MODELS
from tqc_dagster.resources.storage import asset_path
from tqc_dagster.runner import RunOutcome, latest_run_id
from tqc_dagster.stores import SUCCESS_MARKER, join, store_for

STALE = "*"


def stored_paths(config: TqcConfig, asset: str) -> dict[str, str]:
    """The stored files of a judge_version x model asset by partition key (partitions not materialized are left out)."""
    store = store_for(config.storage_root, config.s3)
    paths = {
        f"{judge_version}|{model}": asset_path(config.storage_root, asset, judge_version, model)
        for judge_version in config.judge_version_names
        for model in config.model_names
    }
    return {partition: path for partition, path in paths.items() if store.exists(path)}


def stored_rows(config: TqcConfig, asset_names: list[str], fresh: set[tuple[str, str]]) -> pl.DataFrame:
    """Rows of every stored (asset, partition) file from the parquet footers; a cell this invocation did not write ends in `*`."""
    store = store_for(config.storage_root, config.s3)
    rows = [
        {"asset": asset, "partition": partition, "rows": f"{store.parquet_rows(path)}{'' if (asset, partition) in fresh else STALE}"}
        for asset in asset_names
        if asset not in (EXPORTS, RECORDS, AGREEMENT)
        for partition, path in stored_paths(config, asset).items()
    ]
    return pl.DataFrame(rows, schema={"asset": pl.String, "partition": pl.String, "rows": pl.String})


def quarantine_by_reason(config: TqcConfig, fresh: set[tuple[str, str]]) -> pl.DataFrame:
    store = store_for(config.storage_root, config.s3)
    frames = [
        store.read_parquet(path).with_columns(pl.lit(partition + ("" if (QUARANTINED, partition) in fresh else STALE)).alias("partition"))
        for partition, path in stored_paths(config, QUARANTINED).items()
    ]
    if not frames:
        return pl.DataFrame()
    return (
        pl.concat(frames)
        .pivot(on="partition", index="reason", values="record_id", aggregate_function="len", sort_columns=True)
        .fill_null(0)
        .sort("reason")
    )


def export_counts(config: TqcConfig, fresh: set[tuple[str, str]]) -> pl.DataFrame:
    """Lines per export file kind and split, per judge version and target model (finished exports only)."""
    store = store_for(config.storage_root, config.s3)
    rows = []
    for judge_version in config.judge_version_names:
        for target_model in TARGET_MODELS:
            folder = export_folder(config.storage_root, judge_version, target_model)
            if not store.exists(join(folder, SUCCESS_MARKER)):
                continue
            for split in SPLITS:  # an empty split has no file (0); a Bedrock split may be cut into several
                counts = {kind: sum(_lines(store, uri) for uri in store.glob(join(folder, kind, f"{split}*.jsonl"))) for kind in ("sft", "llamafactory", "bedrock")}
                counts["grpo"] = sum(store.parquet_rows(uri) for uri in store.glob(join(folder, "grpo", f"{split}.parquet")))
                published = "this run" if (EXPORTS, judge_version) in fresh else f"earlier{STALE}"
                rows.append({"judge_version": judge_version, "target_model": target_model, "split": split, **counts, "published": published})
    return pl.DataFrame(rows)


def _lines(store, uri: str) -> int:
    with store.local_copy(uri) as path, open(path, "rb") as handle:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))


def _fresh(config: TqcConfig, outcome: RunOutcome) -> set[tuple[str, str]]:
    """(asset, partition) pairs whose latest materialization was made by this invocation."""
    partitions = {
        *(f"{jv}|{model}" for jv in config.judge_version_names for model in config.model_names),
        *config.judge_version_names,
        *config.model_names,
    }
    with dg.DagsterInstance.get() as instance:
        return {
            (asset, partition)
            for asset in outcome.asset_names
            for partition in partitions
            if latest_run_id(instance, asset, partition) in outcome.run_ids
        }


def print_runs(outcome: RunOutcome) -> None:
    click.echo("\nruns:")
    for run in outcome.runs:
        label = f"{run.stage} {run.partition}"
        if run.status == "FAILED" and any(block.check != "step" for block in run.problems):
            names = ", ".join(f"{block.asset}:{block.check}" for block in run.problems)
            click.echo(f"  {label:<28} FAILED (failed checks: {names})  {run.seconds:.1f} s  run {run.run_id}")
        elif run.status == "skipped":
            click.echo(f"  {label:<28} skipped: {'; '.join(block.headline for block in run.problems)}")
            continue  # the explanation stands under the run that failed
        else:
            click.echo(f"  {label:<28} {run.status}  {run.seconds:.1f} s  run {run.run_id}")
        for block in run.problems + run.warnings:
            click.echo(f"      {'warning: ' if block in run.warnings else ''}{block}")


def print_summary(config: TqcConfig, outcome: RunOutcome) -> None:
    print_runs(outcome)
    fresh = _fresh(config, outcome)
    with pl.Config(tbl_rows=200, tbl_cols=20, tbl_width_chars=200, tbl_hide_column_data_types=True, tbl_hide_dataframe_shape=True):
        rows = stored_rows(config, outcome.asset_names, fresh)
        if rows.height:
            click.echo("\nrows per asset and partition:")
            click.echo(rows.pivot(on="partition", index="asset", values="rows", sort_columns=True))
        reasons = quarantine_by_reason(config, fresh)
        if reasons.height:
            click.echo("\nquarantined (record, model) pairs by reason:")
            click.echo(reasons)
        exported = export_counts(config, fresh)
        if exported.height:
            click.echo("\nexport lines per judge version, target model and split:")
            click.echo(exported)
        shares = synthetic_shares(config, fresh)
        if shares.height:
            cap = config.balance.max_synthetic_share
            click.echo(f"\nsynthetic share of balanced_trainset per criterion (simple model; balance.max_synthetic_share: {cap if cap is not None else 'none'}):")
            click.echo(shares)
        warnings = test_group_warnings(config, fresh)
        if warnings:
            click.echo(f"\ntest criterion groups too small or with a single label (checks.min_test_group_samples: {config.checks.min_test_group_samples}):")
            for warning in warnings:
                click.echo(f"  warning: {warning}")
        kappas = agreement_at_a_glance(config, fresh)
        if kappas.height:
            click.echo("\njudge agreement (weighted kappa per criterion; below agreement.min_kappa is weak):")
            click.echo(kappas)
        if STALE in str(rows) + str(reasons) + str(exported) + str(shares) + "".join(warnings):
            click.echo(f"\n{STALE} stale: stored by an earlier run, not made by this one (skipped, failed or not selected).")
        click.echo(f"\nfiles: {config.storage_root}/<asset>/<judge_version>/<model>.parquet")
        click.echo(f"exports: {config.storage_root}/{EXPORTS}/<judge_version>/<target_model>/ (sft, llamafactory, bedrock, grpo, verl, qe, README.md)")
    print_next_steps(config, outcome)


def _by_judge_version(config: TqcConfig, asset: str, fresh: set[tuple[str, str]]) -> dict[str, pl.DataFrame]:
    """A stored judge_version x model asset, both models together, per judge version with every partition stored;
    the judge version's name ends in `*` when a partition was not made by this invocation."""
    store = store_for(config.storage_root, config.s3)
    stored = stored_paths(config, asset)
    frames = {}
    for judge_version in config.judge_version_names:
        keys = [f"{judge_version}|{model}" for model in config.model_names]
        if all(key in stored for key in keys):
            name = judge_version + ("" if all((asset, key) in fresh for key in keys) else STALE)
            frames[name] = pl.concat([store.read_parquet(stored[key]) for key in keys])
    return frames


def synthetic_shares(config: TqcConfig, fresh: set[tuple[str, str]]) -> pl.DataFrame:
    """Synthetic share of the simple model's balanced_trainset per criterion (rows) and judge version (columns)."""
    columns = []
    for judge_version, frame in _by_judge_version(config, BALANCED, fresh).items():
        simple = frame.filter(pl.col("target_model") == SIMPLE)
        table = synthetic_share(simple).select(pl.col("criterion").cast(pl.String), pl.concat_str(
            (pl.col("synthetic_share") * 100).round(1).cast(pl.String), pl.lit(" % of "), pl.col("train").cast(pl.String)).alias(judge_version))
        overall = pl.DataFrame({"criterion": ["all"], judge_version: [f"{100 * simple.filter(pl.col('origin') == SYNTHETIC).height / max(1, simple.height):.1f} % of {simple.height}"]})
        columns.append(pl.concat([table, overall]))
    if not columns:
        return pl.DataFrame()
    joined = columns[0]
    for table in columns[1:]:
        joined = joined.join(table, on="criterion", how="full", coalesce=True, maintain_order="left")
    return joined


def test_group_warnings(config: TqcConfig, fresh: set[tuple[str, str]]) -> list[str]:
    """One line per test criterion group (per judge version and target model) with too few samples or a single label."""
    found = []
    for judge_version, frame in _by_judge_version(config, TESTSET, fresh).items():
        for target_model in TARGET_MODELS:
            groups = test_groups(frame.filter(pl.col("target_model") == target_model), target_model, config.checks.min_test_group_samples)
            found += [
                f"{judge_version} {row['criterion_group']}: {row['problem']} ({row['test']} samples: {row['negative']} negative, {row['positive']} positive)"
                for row in groups.filter(pl.col("problem").is_not_null()).iter_rows(named=True)
            ]
    return found


def agreement_at_a_glance(config: TqcConfig, fresh: set[tuple[str, str]]) -> pl.DataFrame:
    """Weighted kappa per judge pair and criterion (rows) and model (columns), from the judge_agreement partitions this run made."""
    store = store_for(config.storage_root, config.s3)
    frames = [
        store.read_parquet(path).select(pl.concat_str("judge_a", "judge_b", separator="/").alias("judges"), "criterion", pl.col("weighted_kappa").round(3).alias(model))
        for model in config.model_names
        if (AGREEMENT, model) in fresh and store.exists(path := join(config.storage_root, AGREEMENT, f"{model}.parquet"))
    ]
    if not frames:
        return pl.DataFrame()
    joined = frames[0]
    for frame in frames[1:]:
        joined = joined.join(frame, on=["judges", "criterion"], how="full", coalesce=True)
    return joined


def print_next_steps(config: TqcConfig, outcome: RunOutcome) -> None:
    click.echo("\nnext:")
    failed = [run for run in outcome.runs if run.status == "FAILED"]
    for run in failed:
        click.echo(f"  - fix what {run.stage} {run.partition} names above, then: tqc run --config {config.config_path} --partition '{run.partition}'")
    click.echo("  - look at every asset, check and run in the UI: make dev (or .venv/bin/dagster dev -w workspace.yaml), http://127.0.0.1:3000")
    if not failed:
        click.echo(f"  - train from {join(config.storage_root, EXPORTS)}/<judge_version>/<target_model>/ (README.md there is the dataset card)")
