"""Sensors of Bedrock batch jobs: `batch_jobs_<judge version>`, one per version with `judge_from`, and, with
`synthesis.batch`, `synthesis_batch_jobs` over every sample partition (assets/synthesis_batch.py).

Each tick (off until turned on, like the input sensors) reads the stored judge_requests of its version,
finds the version's jobs on Bedrock (ListModelInvocationJobs by name, then GetModelInvocationJob for each)
and requests:

- a run of judge_jobs of the version when a request file has no job yet and fewer than
  `batch.max_concurrent_jobs` are in flight, or when a job's status changed since judge_jobs last recorded it
  (so the stored job table ends with the final statuses);
- a run of judge_records of the version (its ingest) once every file's job is done (Completed, PartiallyCompleted, Failed,
  Stopped, Expired), once per set of finished jobs (the run key is their ARNs and statuses). Jobs that did
  not complete cleanly are logged with Bedrock's message; their records missing from the output are
  quarantined by the ingest as `missing_from_output`.

`synthesis_batch_jobs` does the same for each partition with stored synthesis_requests: it requests
synthesis_jobs of the partition to submit and record, and synthetic_samples of the partition once every job is done.

No sleeps: Dagster calls the sensor every `TICK_SECONDS`; tests call it directly.
"""

from __future__ import annotations

import hashlib
import json

import dagster as dg
import polars as pl

from tqc_dagster.assets.ingest import RECORDS
from tqc_dagster.assets.judging import JOBS, REQUESTS, job_plan, judged_versions, request_files
from tqc_dagster.assets.samples import SYNTHETIC_SAMPLES
from tqc_dagster.assets.synthesis_batch import SENSOR, SYNTHESIS_JOBS, SYNTHESIS_REQUESTS, synthesis_plan
from tqc_dagster.batch_requests import stored_asset
from tqc_dagster.bedrock.batch import IN_FLIGHT, PENDING, JobPlan, all_done, control_client, existing_jobs, plan_jobs, problems, refresh
from tqc_dagster.config import TqcConfig
from tqc_dagster.partitions import partition_key
from tqc_dagster.resources.storage import asset_path
from tqc_dagster.stores import StorageError

TICK_SECONDS = 300


def _digest(frame: pl.DataFrame) -> str:
    return hashlib.sha256(json.dumps(frame.select("job_name", "job_arn", "status").rows()).encode()).hexdigest()[:16]


def current_jobs(client, plan: JobPlan, requests: pl.DataFrame) -> pl.DataFrame:
    """The jobs of `plan`'s stored `requests` as Bedrock has them now: each request file with its job's ARN and status, or Pending."""
    jobs = plan_jobs(request_files(requests), plan)
    known = existing_jobs(client, plan.prefix)
    arns = [known.get(name, {}).get("jobArn") for name in jobs.get_column("job_name")]
    jobs = jobs.with_columns(pl.Series("job_arn", arns, pl.String))
    return refresh(client, jobs)


def requests_for(jobs: pl.DataFrame, recorded: pl.DataFrame | None, partition: str, max_in_flight: int, jobs_asset: str = JOBS, done_asset: str = RECORDS) -> list[dg.RunRequest]:
    """What one tick asks for, from the jobs now and the `jobs_asset` last stored (None: never): `jobs_asset` to record
    and submit, `done_asset` once every job is done. Pure, so testable alone."""
    key = _digest(jobs)
    statuses = jobs.get_column("status")
    changed = recorded is None or _digest(recorded) != key
    can_submit = (statuses == PENDING).any() and statuses.is_in(IN_FLIGHT).sum() < max_in_flight
    wanted = []
    if changed or can_submit:  # the jobs asset records what Bedrock has (and submits what it may)
        wanted.append(dg.RunRequest(run_key=f"{jobs_asset}|{partition}|{key}", asset_selection=[dg.AssetKey(jobs_asset)], partition_key=partition))
    if all_done(jobs):
        wanted.append(dg.RunRequest(run_key=f"{done_asset}|{partition}|{key}", asset_selection=[dg.AssetKey(done_asset)], partition_key=partition))
    return wanted


def build_batch_sensors(config: TqcConfig) -> list[dg.SensorDefinition]:
    sensors = [_batch_sensor(config, judge_version) for judge_version in judged_versions(config)]
    return sensors + ([_synthesis_sensor(config)] if config.synthesis.batch else [])


def _batch_sensor(config: TqcConfig, judge_version: str) -> dg.SensorDefinition:
    batch = config.judge_versions[judge_version].batch

    @dg.sensor(
        name=f"batch_jobs_{judge_version}",
        asset_selection=[JOBS, RECORDS],
        minimum_interval_seconds=TICK_SECONDS,
        description=f"Submits and polls {judge_version}'s Bedrock batch jobs; requests its ingest from {batch.output_uri} once they are done.",
    )
    def batch_jobs_sensor(context: dg.SensorEvaluationContext):
        try:
            requests = stored_asset(config, REQUESTS, judge_version)
            if requests is None:
                return dg.SkipReason(f"{REQUESTS} of {judge_version} is not materialized yet ({asset_path(config.storage_root, REQUESTS, judge_version)})")
            recorded = stored_asset(config, JOBS, judge_version)
        except StorageError as error:
            return dg.SkipReason(str(error))
        jobs = current_jobs(control_client(batch, config.bedrock.region), job_plan(config, judge_version), requests)
        for problem in problems(jobs):
            context.log.warning(problem)
        wanted = requests_for(jobs, recorded, judge_version, batch.max_concurrent_jobs)
        if not wanted:
            counts = dict(jobs.group_by("status").len().sort("status").iter_rows())
            return dg.SkipReason(f"{judge_version}: jobs by status {counts}, nothing to do")
        return dg.SensorResult(run_requests=wanted)

    return batch_jobs_sensor


def _synthesis_sensor(config: TqcConfig) -> dg.SensorDefinition:
    batch = config.synthesis.batch

    @dg.sensor(
        name=SENSOR,
        asset_selection=[SYNTHESIS_JOBS, SYNTHETIC_SAMPLES],
        minimum_interval_seconds=TICK_SECONDS,
        description="Submits and polls the Bedrock batch jobs of each partition's bulk synthesis (synthesis_requests); requests "
        "synthetic_samples of a partition once its jobs are done.",
    )
    def synthesis_batch_jobs(context: dg.SensorEvaluationContext):
        client, wanted, seen = None, [], {}
        for judge_version in config.judge_version_names:
            for model in config.model_names:
                try:
                    requests = stored_asset(config, SYNTHESIS_REQUESTS, judge_version, model)
                    recorded = stored_asset(config, SYNTHESIS_JOBS, judge_version, model)
                except StorageError as error:
                    context.log.warning(str(error))
                    continue
                if requests is None or requests.is_empty():
                    continue
                client = client or control_client(batch, config.bedrock.region)
                jobs = current_jobs(client, synthesis_plan(config, judge_version, model), requests)
                for problem in problems(jobs):
                    context.log.warning(problem)
                key = partition_key(judge_version, model)
                wanted += requests_for(jobs, recorded, key, batch.max_concurrent_jobs, SYNTHESIS_JOBS, SYNTHETIC_SAMPLES)
                seen[str(key)] = dict(jobs.group_by("status").len().sort("status").iter_rows())
        if not wanted:
            return dg.SkipReason(f"jobs by partition and status {seen or 'none (no synthesis_requests with requests stored)'}, nothing to do")
        return dg.SensorResult(run_requests=wanted)

    return synthesis_batch_jobs
