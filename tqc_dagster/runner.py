"""Materializing the graph from the command line: stage by stage, one run per partition, on a persistent instance.

Blocking holds across the runs: a partition whose step or blocking check failed feeds nothing
downstream. Before each run the runner asks `blocking.blocked_parents` whether an input partition
failed here or did not pass its blocking checks; if so the run is skipped, with the reason, and
its own assets count as blocked for the stages after it. Other partitions go on.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import click
import dagster as dg
from dagster._core.events import RunFailureReason
from dagster._core.definitions.repository_definition import SINGLETON_REPOSITORY_NAME
from dagster._core.storage.dagster_run import IN_PROGRESS_RUN_STATUSES
from dagster._core.storage.tags import PARTITION_NAME_TAG, REPOSITORY_LABEL_TAG
from dagster._core.utils import make_new_run_id

from tqc_dagster.assets.ingest import PROCESSED, RECORDS
from tqc_dagster.blocking import Block, blocked_parents, gating_checks
from tqc_dagster.config import ConfigError, TqcConfig
from tqc_dagster.definitions import STAGES, build_definitions
from tqc_dagster.partitions import partition_key, split_key
from tqc_dagster.run_monitoring import release_dead_runs
from tqc_dagster.stores import version_files

# The console shows no Dagster events (errors come with stack traces); the summary explains every failure, the run logs keep the detail.
QUIET_CONSOLE = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}

OK, WARNED, FAILED, SKIPPED = "ok", "warned", "FAILED", "skipped"

# The code location of workspace.yaml (location_name) and its one repository: the UI lists a job's runs by this
# tag, so `tqc run`'s in-process runs show under their jobs and in the Overview timeline like runs launched there.
CODE_LOCATION = "tqc_dagster"
CODE_LOCATION_TAGS = {REPOSITORY_LABEL_TAG: f"{SINGLETON_REPOSITORY_NAME}@{CODE_LOCATION}"}


class RunInterrupted(Exception):
    """SIGINT or SIGTERM arrived during a run; the run was marked canceled and nothing after it started."""


@dataclass
class StageRun:
    """One stage for one partition: ok, warned (a warning check failed), FAILED or skipped, and why."""

    stage: str
    partition: str
    status: str
    run_id: str | None = None
    problems: list[Block] = field(default_factory=list)  # FAILED: what failed; skipped: the blocked inputs
    warnings: list[Block] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class RunOutcome:
    runs: list[StageRun]
    asset_names: list[str]

    @property
    def success(self) -> bool:
        return all(run.status in (OK, WARNED) for run in self.runs)

    @property
    def run_ids(self) -> set[str]:
        return {run.run_id for run in self.runs if run.run_id}


def selected_partitions(config: TqcConfig, requested: list[str]) -> list[dg.MultiPartitionKey]:
    everything = [partition_key(jv, model) for jv in config.judge_version_names for model in config.model_names]
    if not requested:
        return everything
    known = {str(key) for key in everything}
    unknown = [key for key in requested if key not in known]
    if unknown:
        raise ConfigError(f"unknown partition(s) {unknown}; known: {sorted(known)}")
    return [key for key in everything if str(key) in requested]


def _failure_message(event: dg.DagsterEvent) -> str:
    """The user-facing reason of a step failure: a dg.Failure's description, else the innermost error's message."""
    data = event.step_failure_data
    if data.user_failure_data is not None and data.user_failure_data.description:
        return data.user_failure_data.description
    error = data.error
    while error.cause is not None:
        error = error.cause
    return error.message.strip().split(f"{error.cls_name}: ", 1)[-1]


def _execute(defs: dg.Definitions, instance: dg.DagsterInstance, job: str, key, assets: list[str] | None) -> StageRun:
    """One in-process run of `job` for partition `key`: of `assets`, or (None) of the job's checks alone."""
    partition = str(key)
    run_id = make_new_run_id()
    started = time.monotonic()
    # A checks-only job has no asset to take a partition from: the partition goes in as the run's tag.
    where = {"partition_key": key, "asset_selection": [dg.AssetKey(name) for name in assets]} if assets else {}
    tags = CODE_LOCATION_TAGS if assets else {**CODE_LOCATION_TAGS, PARTITION_NAME_TAG: partition}
    result = defs.resolve_job_def(job).execute_in_process(instance=instance, raise_on_error=False, run_config=QUIET_CONSOLE, run_id=run_id, tags=tags, **where)
    failure = result.get_run_failure_event() if not result.success else None
    if failure is not None and failure.event_specific_data.failure_reason == RunFailureReason.UNEXPECTED_TERMINATION:
        instance.report_run_canceled(instance.get_run_by_id(run_id), "Canceled: tqc received SIGINT or SIGTERM.")
        raise RunInterrupted(f"{job} {partition}: run {run_id} canceled")
    checks = [
        (evaluation.severity, Block(evaluation.asset_key.to_user_string(), partition, evaluation.check_name, evaluation.description or "see the check's metadata in the UI"))
        for evaluation in result.get_asset_check_evaluations()
        if not evaluation.passed
    ]
    warnings = [block for severity, block in checks if severity == dg.AssetCheckSeverity.WARN]
    seconds = time.monotonic() - started
    if result.success:
        return StageRun(job, partition, WARNED if warnings else OK, run_id, warnings=warnings, seconds=seconds)
    problems = [block for severity, block in checks if severity == dg.AssetCheckSeverity.ERROR]
    if not problems:
        step_failures = result.get_step_failure_events()
        message = _failure_message(step_failures[0]) if step_failures else "the run failed"
        problems = [Block(asset, partition, "step", message) for asset in assets or [job]]
    return StageRun(job, partition, FAILED, run_id, problems, warnings, seconds)


def _stage_partitions(config: TqcConfig, keys: list[dg.MultiPartitionKey], stored: Callable[[str], bool]) -> dict[str, list]:
    """The partitions each kind of stage runs for. Agreement runs for every model whose samples of a compared judge
    version are in this run (as the UI backfill of a judge version refreshes it), once the other judge's samples
    are in the run too or stored (`stored(partition)`)."""
    chosen = {split_key(key) for key in keys}
    judges = config.agreement.judges
    return {
        "judge_version": sorted({judge_version for judge_version, _ in chosen}),
        "sample": keys,
        "model": sorted(
            {
                model
                for judge_version, model in chosen
                if judge_version in judges and all((judge, model) in chosen or stored(f"{judge}|{model}") for judge in judges)
            }
        ),
    }


def latest_run_id(instance: dg.DagsterInstance, asset: str, partition: str) -> str | None:
    """The run of the asset partition's latest materialization (None: never materialized)."""
    records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition]), limit=1).records
    return records[0].run_id if records else None


def _busy(instance: dg.DagsterInstance, assets: list[str], partition: str) -> list[Block]:
    """Runs in progress elsewhere (the UI, the automation sensor, another tqc) that materialize these asset partitions."""
    runs = instance.get_runs(filters=dg.RunsFilter(statuses=IN_PROGRESS_RUN_STATUSES, tags={PARTITION_NAME_TAG: partition}))
    return [
        Block(asset, partition, "busy", f"run {run.run_id} ({run.job_name}) is materializing it now; run this again once it has finished")
        for run in runs
        for asset in assets
        if run.asset_selection is None or dg.AssetKey(asset) in run.asset_selection
    ][:1]


def materialize_partitions(config: TqcConfig, requested: list[str], selection: str | None, home: Path) -> RunOutcome:
    """The selected assets, stage by stage (see STAGES), one in-process run per partition, on the instance at `home`.

    Raises RunInterrupted on SIGINT / SIGTERM (the run in progress is marked canceled).
    """
    os.environ["DAGSTER_HOME"] = str(home)
    defs = build_definitions(config)
    graph = defs.resolve_asset_graph()
    all_names = sorted(key.to_user_string() for key in graph.get_all_asset_keys())
    names = [name.strip() for name in selection.split(",") if name.strip()] if selection else all_names
    unknown = sorted(set(names) - set(all_names))
    if unknown:
        raise ConfigError(f"unknown asset(s) {unknown} in --select; known: {all_names}")
    keys = selected_partitions(config, requested)
    if RECORDS in names:
        for judge_version in sorted({split_key(key)[0] for key in keys}):
            version_files(config, judge_version)  # a judged version may have no output yet
    blocking = gating_checks([*defs.assets, *defs.asset_checks])
    failed_here: dict[tuple[str, str], Block] = {}  # (asset, partition) -> why it feeds nothing downstream
    runs = []
    with dg.DagsterInstance.get() as instance:
        for run_id in release_dead_runs(instance):
            click.echo(f"run {run_id}: its process is gone (killed or crashed); marked failed, its pool slots freed")
        partitions = _stage_partitions(config, keys, lambda partition: latest_run_id(instance, PROCESSED, partition) is not None)
        for stage in STAGES:
            chosen = [name for name in stage.assets if name in names]
            for key in partitions[stage.partitions] if chosen else []:
                partition = str(key)
                blocked = blocked_parents(instance, graph, chosen, partition, failed_here, blocking) or _busy(instance, chosen, partition)
                if blocked:
                    runs.append(StageRun(stage.job, partition, SKIPPED, problems=blocked))
                else:
                    click.echo(f"materializing {', '.join(chosen)} for {partition} ...", nl=False)
                    runs.append(_execute(defs, instance, stage.job, key, chosen))
                    click.echo(f" {runs[-1].status} ({runs[-1].seconds:.1f} s)")
                if runs[-1].status in (FAILED, SKIPPED):
                    failed_here.update({(asset, partition): runs[-1].problems[0] for asset in chosen})
    return RunOutcome(runs, names)


def check_stored(config: TqcConfig, requested: list[str], home: Path) -> RunOutcome:
    """Every stage's checks on what is stored, per partition (nothing is materialized): one in-process run of
    the stage's check job each, on the instance at `home`, so the results show in the UI like any other."""
    os.environ["DAGSTER_HOME"] = str(home)
    defs = build_definitions(config)
    jobs = {job.name for job in defs.resolve_all_job_defs()}
    runs = []
    with dg.DagsterInstance.get() as instance:
        partitions = _stage_partitions(config, selected_partitions(config, requested), lambda partition: latest_run_id(instance, PROCESSED, partition) is not None)
        for stage in STAGES:
            for key in partitions[stage.partitions] if stage.check_job in jobs else []:
                click.echo(f"checking {', '.join(stage.assets)} for {key} ...", nl=False)
                runs.append(_execute(defs, instance, stage.check_job, key, None))
                click.echo(f" {runs[-1].status} ({runs[-1].seconds:.1f} s)")
    return RunOutcome(runs, [])
