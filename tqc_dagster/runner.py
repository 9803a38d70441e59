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
from tqc_dagster.definitions import STAGES, Stage, build_definitions
from tqc_dagster.partitions import partition_key, split_key
from tqc_dagster.run_monitoring import release_dead_runs
from tqc_dagster.stores import input_files

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


def stage_keys(defs: dg.Definitions, stage: Stage, keys: list[dg.MultiPartitionKey], stored: Callable[[str, str], bool]) -> tuple[list, list[str]]:
    """The partitions of `stage`'s job that a run of the sample partitions `keys` refreshes, as the UI's backfill of
    them does, and why the others it reaches wait: (keys to run, reasons).

    The job's partitions definition decides: a judge_version x model job runs `keys`; a job partitioned by one
    dimension (judge_version, model) runs each partition that one of `keys` falls in. A stage that reads every
    sample partition of its own (exports: both models of a version; judge_agreement: every judge version of a
    model) runs only once each of them is in this run or stored (`stored(asset, partition)`), else it waits.
    """
    partitions_def = defs.resolve_job_def(stage.job).partitions_def
    if isinstance(partitions_def, dg.MultiPartitionsDefinition):
        return keys, []
    graph = defs.resolve_asset_graph()
    samples_def = graph.get(dg.AssetKey(PROCESSED)).partitions_def
    dimension = next(d.name for d in samples_def.partitions_defs if d.partitions_def == partitions_def)
    inputs = sorted(
        {parent.to_user_string() for asset in stage.assets for parent in graph.get(dg.AssetKey(asset)).parent_keys} - set(stage.assets)
    )
    chosen = {str(key) for key in keys}
    due, waiting = [], []
    for partition in partitions_def.get_partition_keys():
        read = [str(key) for key in samples_def.get_partition_keys() if key.keys_by_dimension[dimension] == partition]
        if chosen.isdisjoint(read):
            continue
        missing = [key for key in read if key not in chosen and not all(stored(asset, key) for asset in inputs)]
        if missing:
            waiting.append(f"{', '.join(stage.assets)} {partition}: waits for {', '.join(missing)} (not stored, not in this run)")
        else:
            due.append(partition)
    return due, waiting


def latest_run_id(instance: dg.DagsterInstance, asset: str, partition: str) -> str | None:
    """The run of the asset partition's latest materialization (None: never materialized)."""
    records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition]), limit=1).records
    return records[0].run_id if records else None


def _due(defs: dg.Definitions, instance: dg.DagsterInstance, stage: Stage, keys: list[dg.MultiPartitionKey]) -> list:
    """stage_keys on this instance, saying which partitions wait and for what."""
    due, waiting = stage_keys(defs, stage, keys, lambda asset, partition: latest_run_id(instance, asset, partition) is not None)
    for reason in waiting:
        click.echo(reason)
    return due


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
            input_files(config, judge_version)
    blocking = gating_checks([*defs.assets, *defs.asset_checks])
    failed_here: dict[tuple[str, str], Block] = {}  # (asset, partition) -> why it feeds nothing downstream
    runs = []
    with dg.DagsterInstance.get() as instance:
        for run_id in release_dead_runs(instance):
            click.echo(f"run {run_id}: its process is gone (killed or crashed); marked failed, its pool slots freed")
        for stage in STAGES:
            chosen = [name for name in stage.assets if name in names]
            for key in _due(defs, instance, stage, keys) if chosen else []:
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
        keys = selected_partitions(config, requested)
        for stage in STAGES:
            for key in _due(defs, instance, stage, keys) if stage.check_job in jobs else []:
                click.echo(f"checking {', '.join(stage.assets)} for {key} ...", nl=False)
                runs.append(_execute(defs, instance, stage.check_job, key, None))
                click.echo(f" {runs[-1].status} ({runs[-1].seconds:.1f} s)")
    return RunOutcome(runs, [])
