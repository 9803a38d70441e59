"""The `tqc` command: demo data, and materializing the graph on a persistent Dagster instance."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import click

from tqc_dagster.config import CONFIG_ENV_VAR, PROJECT_ROOT, ConfigError, TqcConfig, load_config

DAGSTER_HOME_FOLDER = "dagster_home"


@click.group()
def main() -> None:
    """tqc_dagster: LLM-judge verdicts on translations -> fine-tuning data."""


@main.command("demo-data")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None, help="default: data/demo next to the config")
@click.option("--records", type=click.IntRange(min=1), default=2000, show_default=True, help="judge records per judge version")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--if-absent", is_flag=True, help="do nothing when the folder already holds demo data")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None)
def demo_data(out_dir: str | None, records: int, seed: int, if_absent: bool, config_path: str | None) -> None:
    """Write realistic judge batch outputs for v1 and v2 in the real Bedrock folder layout."""
    from tqc_dagster.demo_data import SUMMARY_FILE, write_demo_data

    target = Path(out_dir) if out_dir else _config_folder(config_path) / "data" / "demo"
    if if_absent and (target / SUMMARY_FILE).exists():
        click.echo(f"demo data already in {target}")
        return
    summary = write_demo_data(target, records=records, seed=seed)
    for version, info in summary["judge_versions"].items():
        click.echo(f"{version}: {info['lines']} lines in {len(info['files'])} files under {info['folder']}")


@main.command("run")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None, help=f"default: ${CONFIG_ENV_VAR} or tqc.yaml")
@click.option("--partition", "partitions", multiple=True, help="e.g. v1|model_a (repeatable); default: all")
@click.option("--judge-version", "judge_versions", multiple=True, help="every partition of a judge version, e.g. v2 (repeatable)")
@click.option("--select", "selection", default=None, help="comma-separated asset names; default: all")
def run(config_path: str | None, partitions: tuple[str, ...], judge_versions: tuple[str, ...], selection: str | None) -> None:
    """Materialize the selection for each partition; exit 1 when an asset or a blocking check fails
    (and skip what follows it), 130 when stopped by SIGINT or SIGTERM."""
    from tqc_dagster.runner import RunInterrupted, materialize_partitions
    from tqc_dagster.stores import StorageError
    from tqc_dagster.summary import print_summary

    config = _load(config_path)
    # SIGTERM stops the command like Ctrl-C: the run in progress is canceled, atomic writes leave nothing half-made.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        outcome = materialize_partitions(config, _requested(config, partitions, judge_versions), selection, _instance_home(config))
        print_summary(config, outcome)
    except (ConfigError, StorageError) as error:
        raise click.ClickException(str(error)) from None
    except (RunInterrupted, KeyboardInterrupt) as interrupt:
        click.echo(f"stopped: {interrupt or 'interrupted between runs'}", err=True)
        sys.stdout.flush()
        sys.stderr.flush()
        # Worker threads still waiting on the network (Bedrock) must not hold the exit up.
        os._exit(130)
    if not outcome.success:
        sys.exit(1)


@main.command("check")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None, help=f"default: ${CONFIG_ENV_VAR} or tqc.yaml")
@click.option("--partition", "partitions", multiple=True, help="e.g. v1|model_a (repeatable); default: all")
@click.option("--judge-version", "judge_versions", multiple=True, help="every partition of a judge version, e.g. v2 (repeatable)")
def check(config_path: str | None, partitions: tuple[str, ...], judge_versions: tuple[str, ...]) -> None:
    """Run every asset check on what is stored, materializing nothing; print each failed check's explanation.
    Exit 1 when a blocking check fails (or its data is missing), 0 otherwise: a gate for CI."""
    from tqc_dagster.runner import RunInterrupted, check_stored
    from tqc_dagster.stores import StorageError
    from tqc_dagster.summary import print_runs

    config = _load(config_path)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        outcome = check_stored(config, _requested(config, partitions, judge_versions), _instance_home(config))
    except (ConfigError, StorageError) as error:
        raise click.ClickException(str(error)) from None
    except (RunInterrupted, KeyboardInterrupt) as interrupt:
        raise click.ClickException(f"stopped: {interrupt or 'interrupted'}") from None
    print_runs(outcome)
    failed = [run for run in outcome.runs if run.status == "FAILED"]
    failures = "" if not failed else ": " + ", ".join(f"{run.stage} {run.partition}" for run in failed)
    click.echo(f"\nchecked {len(outcome.runs)} stage partitions; {len(failed)} failed{failures}")
    if failed:
        sys.exit(1)


@main.command("estimate")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None, help=f"default: ${CONFIG_ENV_VAR} or tqc.yaml")
@click.option("--partition", "partitions", multiple=True, help="e.g. v1|model_a (repeatable); default: all")
def estimate_command(config_path: str | None, partitions: tuple[str, ...]) -> None:
    """Judging through batch inference (judged versions) and bedrock synthesis (per partition): requests, tokens, time, cost."""
    import polars as pl

    from tqc_dagster.estimate import estimate
    from tqc_dagster.runner import selected_partitions
    from tqc_dagster.partitions import split_key

    config = _load(config_path)
    from tqc_dagster.stores import StorageError

    from tqc_dagster.assets.judging import judged_versions
    from tqc_dagster.estimate_judging import estimate_judging, print_judging

    judged = judged_versions(config)
    try:
        if judged:
            print_judging(config, estimate_judging(config))
        # without --partition, a judged version's partitions have no samples before it is judged: left out
        chosen = [split_key(key) for key in selected_partitions(config, list(partitions))]
        table = estimate(config, chosen if partitions else [(jv, model) for jv, model in chosen if jv not in judged])
    except (ConfigError, StorageError) as error:
        raise click.ClickException(str(error)) from None
    bedrock = config.bedrock
    click.echo(
        f"bedrock synthesis with {bedrock.model_id}: quota {bedrock.requests_per_minute:g} requests/min, "
        f"{bedrock.tokens_per_minute:,} tokens/min; {config.synthesis.samples_per_request} samples per request; "
        f"min_samples {config.synthesis.min_samples}"
    )
    with pl.Config(tbl_rows=100, tbl_cols=20, tbl_width_chars=200, tbl_hide_column_data_types=True, tbl_hide_dataframe_shape=True, thousands_separator=True):
        click.echo(table)
    totals = table.select(pl.exclude("partition").sum())
    verify = f" (+{totals['verify_requests'][0]:,} judge requests verifying the samples)" if "verify_requests" in totals.columns else ""
    click.echo(
        f"total: {totals['requests'][0]:,} requests{verify}, {totals['input_tokens'][0] + totals['output_tokens'][0]:,} tokens, "
        f"{totals['hours_at_quota'][0]:.2f} h at quota (partitions run one at a time in the bedrock pool)"
        + ("" if bedrock.price is None else f", ${totals['cost_usd'][0]:,.2f}")
        + ("" if "cost_with_batch_usd" not in totals.columns or totals["cost_with_batch_usd"][0] is None else
           f" (${totals['cost_with_batch_usd'][0]:,.2f} with round 0 of {totals['batch_requests'][0]:,} requests through batch inference)")
        + ". Rejected samples add requests (up to synthesis.max_requests_per_group per group)."
    )


@main.command("resubmit-missing")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None, help=f"default: ${CONFIG_ENV_VAR} or tqc.yaml")
@click.option("--judge-version", "judge_version", required=True, help="a judge version with judge_from, already ingested")
def resubmit_missing_command(config_path: str | None, judge_version: str) -> None:
    """Ask Bedrock again, in new batch jobs, only the records of a judged version that no output answered."""
    import polars as pl

    from tqc_dagster.resubmit import resubmit_missing
    from tqc_dagster.stores import StorageError

    config = _load(config_path)
    try:
        jobs = resubmit_missing(config, judge_version, _instance_home(config))
    except (ConfigError, StorageError, RuntimeError) as error:
        raise click.ClickException(str(error)) from None
    with pl.Config(tbl_rows=100, tbl_width_chars=200, tbl_hide_column_data_types=True, tbl_hide_dataframe_shape=True, fmt_str_lengths=70):
        click.echo(jobs.select("request_file", "records", "status", "job_arn"))
    click.echo(f"the batch_jobs_{judge_version} sensor requests the ingest once every job is done")


def _requested(config: TqcConfig, partitions: tuple[str, ...], judge_versions: tuple[str, ...]) -> list[str]:
    """--partition keys plus every partition of each --judge-version."""
    return [*partitions, *(f"{version}|{model}" for version in judge_versions for model in config.model_names)]


def _load(config_path: str | None) -> TqcConfig:
    try:
        config = load_config(config_path)
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    os.environ[CONFIG_ENV_VAR] = config.config_path
    return config


def _config_folder(config_path: str | None) -> Path:
    return Path(config_path or os.environ.get(CONFIG_ENV_VAR) or Path.cwd() / "tqc.yaml").resolve().parent


def _instance_home(config: TqcConfig) -> Path:
    """DAGSTER_HOME, or the `dagster_home` folder beside the config, so runs show in `dagster dev`.

    A new home gets the project's instance settings (telemetry off, the bedrock pool limit).
    """
    home = Path(os.environ.get("DAGSTER_HOME") or Path(config.config_path).parent / DAGSTER_HOME_FOLDER)
    home.mkdir(parents=True, exist_ok=True)
    settings = home / "dagster.yaml"
    if not settings.exists():
        settings.write_text((PROJECT_ROOT / DAGSTER_HOME_FOLDER / "dagster.yaml").read_text())
    return home

