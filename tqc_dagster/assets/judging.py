"""Judging through Bedrock batch inference: judge_requests (request files) -> judge_jobs (one job per file).

Only judge versions with `judge_from` are judged here (a version without it reads its `input` glob, as
before). Once their jobs are done, `batch_sensors.py` requests the version's ingest, which reads the
outputs from `batch.output_uri` and quarantines every requested record no output names.
"""

import dagster as dg
import polars as pl

from tqc_dagster.assets import OWNERS, storage_kinds
from tqc_dagster.assets.ingest import RECORDS
from tqc_dagster.assets.metadata import column_schema, counts_dict, table_metadata
from tqc_dagster.bedrock.batch import JobPlan, control_client, name_prefix, problems, submit_and_record
from tqc_dagster.config import TqcConfig
from tqc_dagster.batch_requests import request_files, stored_asset, write_request_files
from tqc_dagster.core.judge_requests import SKIP_REASONS, SKIPPED_SCHEMA, build_requests, missing_from_output, unanswered
from tqc_dagster.resources.storage import asset_path
from tqc_dagster.schemas import JudgeJobs, JudgeRequests
from tqc_dagster.stores import join

GROUP = "judging"
REQUESTS = "judge_requests"
JOBS = "judge_jobs"


def judged_versions(config: TqcConfig) -> list[str]:
    """Judge versions judged by the platform (with judge_from), in config order."""
    return [name for name, version in config.judge_versions.items() if version.judge_from is not None]


def job_plan(config: TqcConfig, judge_version: str) -> JobPlan:
    version = config.judge_versions[judge_version]
    batch = version.batch
    return JobPlan(judge_version, name_prefix(judge_version), version.judge_model, batch.role_arn, batch.output_uri.rstrip("/") + "/", batch.timeout_hours, batch.max_concurrent_jobs)


def write_requests(config: TqcConfig, judge_version: str, requests: pl.DataFrame, round_: int = 0) -> pl.DataFrame:
    """Cut the requests into files under batch.input_uri (round 1, 2, ...: under `retry-<round>/`), each written
    atomically; the `JudgeRequests` frame."""
    batch = config.judge_versions[judge_version].batch
    folder = join(batch.input_uri, f"retry-{round_}") if round_ else batch.input_uri
    return write_request_files(requests, batch, config.s3, folder, round_)


def jobs_output(jobs: pl.DataFrame, log) -> dg.Output:
    """A job table (bedrock.batch.JOB_SCHEMA) as its asset's output (judge_jobs, synthesis_jobs): the jobs that did not
    complete cleanly logged and listed, the statuses counted."""
    trouble = problems(jobs)
    for problem in trouble:
        log.warning(problem)
    return dg.Output(
        jobs,
        metadata={
            "dagster/row_count": jobs.height,
            "by_status": dg.MetadataValue.json(counts_dict(jobs, "status")),
            "jobs": table_metadata(jobs.drop("client_token", "sha256"), 100),
            "problems": dg.MetadataValue.json(trouble),
        },
    )


class RequestsConfig(dg.Config):
    """Run config of judge_requests."""

    missing_only: bool = False  # ask again only the records no output of the latest ingest answered (tqc resubmit-missing)


def _stored(config: TqcConfig, asset: str, judge_version: str) -> pl.DataFrame:
    """`stored_asset`, or FileNotFoundError naming the asset, the version and the path when it is not materialized."""
    stored = stored_asset(config, asset, judge_version)
    if stored is None:
        raise FileNotFoundError(f"{asset} of {judge_version} is not materialized ({asset_path(config.storage_root, asset, judge_version)})")
    return stored


def requests_again(config: TqcConfig, judge_version: str, judge_from_records: pl.DataFrame, translation_ids: list[int], log) -> pl.DataFrame:
    """The stored judge_requests plus a new round asking the records no output of the last ingest answered.

    Raises ValueError when every record has an answer, and RequestError (core.judge_requests) when fewer remain than
    a batch job takes (min_records_per_job): those are better judged online."""
    previous = _stored(config, REQUESTS, judge_version)
    ids = unanswered(_stored(config, RECORDS, judge_version), previous)
    if ids.is_empty():
        raise ValueError(f"every record asked in {judge_version}'s batch jobs has an answer: nothing to resubmit")
    requests, _ = build_requests(judge_from_records.filter(pl.col("record_id").is_in(ids.implode())), config.judge_versions[judge_version].batch.prompt, translation_ids)
    round_ = int(previous.get_column("round").max()) + 1
    log.info(f"asking {requests.height} unanswered records of {judge_version} again (round {round_})")
    return pl.concat([previous, write_requests(config, judge_version, requests, round_)])


def with_missing_requests(config: TqcConfig, judge_version: str, records: pl.DataFrame, log) -> pl.DataFrame:
    """judge_records of a judged version plus one `missing_from_output` row per requested record no output names."""
    try:
        requests = _stored(config, REQUESTS, judge_version)
    except FileNotFoundError as error:
        raise FileNotFoundError(f"{error}: nothing was asked, so there is nothing to ingest") from None
    missing = missing_from_output(records, requests)
    if missing.height:
        log.warning(f"{missing.height} records asked in {judge_version}'s batch jobs have no output line: quarantined as missing_from_output")
    return pl.concat([records, missing])


def _from_judge_from(config: TqcConfig, judged: list[str]) -> dg.StaticPartitionMapping:
    """judge_records of each judged version's judge_from (StaticPartitionMapping maps upstream keys to downstream ones)."""
    downstream: dict[str, set[str]] = {}
    for name in judged:
        downstream.setdefault(config.judge_versions[name].judge_from, set()).add(name)
    return dg.StaticPartitionMapping(downstream)


def build_judging_assets(config: TqcConfig, judge_versions: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    judged = judged_versions(config)
    if not judged:
        return []
    partitions = dg.StaticPartitionsDefinition(judged)
    translation_ids = sorted(model.translation_id for model in config.models.values())
    kinds = storage_kinds(config.storage_root)
    project = config  # the asset's own `config` parameter is its run config (RequestsConfig)

    @dg.asset(
        name=REQUESTS,
        group_name=GROUP,
        kinds=kinds | {"bedrock"} | ({"s3"} if any(config.judge_versions[v].batch.input_uri.startswith("s3://") for v in judged) else set()),
        owners=OWNERS["ingest"],
        partitions_def=partitions,
        ins={RECORDS: dg.AssetIn(partition_mapping=_from_judge_from(config, judged))},
        description="The batch inference requests of a judged version: one line per record of its judge_from version "
        "(recordId, modelInput in the judge model's Messages body), cut into files within Bedrock's batch quotas and "
        "written atomically under batch.input_uri. One row per record: its file and line.",
        metadata=column_schema(JudgeRequests),
    )
    def judge_requests(context: dg.AssetExecutionContext, judge_records: pl.DataFrame, config: RequestsConfig):
        judge_version = context.partition_key
        if config.missing_only:
            written, skipped = requests_again(project, judge_version, judge_records, translation_ids, context.log), pl.DataFrame(schema=SKIPPED_SCHEMA)
        else:
            requests, skipped = build_requests(judge_records, project.judge_versions[judge_version].batch.prompt, translation_ids)
            written = write_requests(project, judge_version, requests)
        JudgeRequests.validate(written)
        files = request_files(written)
        yield dg.Output(
            written,
            metadata={
                "dagster/row_count": written.height,
                "files": table_metadata(files, 100),
                "request_bytes": int(written.get_column("bytes").sum() or 0),
                "skipped": dg.MetadataValue.json({reason: {"records": n, "means": SKIP_REASONS[reason]} for reason, n in counts_dict(skipped, "reason").items()}),
                "skipped_rows": table_metadata(skipped, 20),
            },
        )

    @dg.asset(
        name=JOBS,
        group_name=GROUP,
        kinds={"bedrock", *(k for k in kinds if k != "polars")},
        owners=OWNERS["ingest"],
        partitions_def=partitions,
        ins={REQUESTS: dg.AssetIn()},
        description="One Bedrock batch inference job per request file (CreateModelInvocationJob), never two: named and "
        "tokened by the file's content hash and found again by ListModelInvocationJobs; at most batch.max_concurrent_jobs "
        "in flight, the others Pending until a later materialization (the batch_jobs sensor requests it). "
        "One row per file: job ARN, status and Bedrock's message.",
        metadata=column_schema(JudgeJobs),
    )
    def judge_jobs(context: dg.AssetExecutionContext, judge_requests: pl.DataFrame):
        judge_version = context.partition_key
        client = control_client(config.judge_versions[judge_version].batch, config.bedrock.region)
        plan = job_plan(config, judge_version)
        yield jobs_output(JudgeJobs.validate(submit_and_record(client, request_files(judge_requests), plan, context.log.info)), context.log)

    return [judge_requests, judge_jobs]
