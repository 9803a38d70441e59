"""Bedrock batch inference jobs (of a judged version, or of a partition's bulk synthesis): submit once per request
file, poll, report.

Through boto3's `bedrock` client (the control plane: CreateModelInvocationJob, GetModelInvocationJob,
ListModelInvocationJobs; AWS API reference, https://docs.aws.amazon.com/bedrock/latest/APIReference/).
A job is named, and its clientRequestToken made, from the SHA-256 of everything that shapes it (its scope: the
judge version, or the synthesis partition; model, request file content, output URI, role), so:

- a rerun finds its job by name (ListModelInvocationJobs, nameContains) and does not submit it again;
- a crash between CreateModelInvocationJob and recording its ARN resends the same token, which Bedrock
  answers with the job already made ("If this token matches a previous request, Amazon Bedrock ignores
  the request, but does not return an error", CreateModelInvocationJob, clientRequestToken).

Credentials: boto3's default chain only; nothing here logs or stores them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

# ModelInvocationJobStatus (botocore's bedrock service model).
IN_FLIGHT = ("Submitted", "Validating", "Scheduled", "InProgress", "Stopping")
TERMINAL = ("Completed", "PartiallyCompleted", "Failed", "Stopped", "Expired")
NOT_DONE_WELL = ("PartiallyCompleted", "Failed", "Stopped", "Expired")
PENDING = "Pending"  # a request file with no job yet (at most max_concurrent_jobs are in flight)
JOB_SCHEMA = {
    "request_file": pl.String, "sha256": pl.String, "records": pl.Int64, "job_name": pl.String, "client_token": pl.String,
    "job_arn": pl.String, "status": pl.String, "message": pl.String, "error_records": pl.Int64,
}


class BatchJobError(RuntimeError):
    """A control-plane refusal that submitting again will not fix (validation, access), with the file named."""


def control_client(batch, region: str):
    """boto3's `bedrock` client for `batch` (config_batch.BatchJobs): its region (else `region`) and endpoint_url."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "bedrock", region_name=batch.region or region, endpoint_url=batch.endpoint_url,
        config=Config(retries={"mode": "standard", "max_attempts": 8}),
    )


MAX_PREFIX = 40  # of a job name's 63 characters: at least 23 hex digits (92 bits) of the content hash follow it


def name_prefix(judge_version: str) -> str:
    """Job names of a judge version start with this (ModelInvocationJobName allows no `_`; version names have no `-`),
    at most MAX_PREFIX characters, so the content hash after it tells a version's files apart however long its name."""
    return f"tqc-{judge_version.replace('_', '-')}-"[:MAX_PREFIX]


def synthesis_prefix(judge_version: str, model: str) -> str:
    """Job names of a partition's bulk synthesis start with this: `tqcs-` is never the start of a judging job's `tqc-`
    name, so the two kinds never list as each other's. Model names may hold `_` and `.`, which the name allows only in part."""
    return f"tqcs-{judge_version}-{model}-".replace("_", "-")[:MAX_PREFIX]


def job_identity(scope: str, prefix: str, model_id: str, sha256: str, output_uri: str, role_arn: str) -> tuple[str, str]:
    """(job name, client request token) of one request file: 63 and 64 characters at most, from its content hash."""
    digest = hashlib.sha256("|".join((scope, model_id, sha256, output_uri, role_arn)).encode()).hexdigest()
    return (prefix + digest)[:63], digest


@dataclass(frozen=True)
class JobPlan:
    """What to submit for one judged version (scope: the judge version) or one partition's bulk synthesis.

    `prefix` starts every job name of the scope (`name_prefix`, `synthesis_prefix`); `invocation_type` is the job's
    modelInvocationType (None: Bedrock's default, InvokeModel, the model's native bodies; "Converse": Converse bodies).
    """

    scope: str
    prefix: str
    model_id: str
    role_arn: str
    output_uri: str
    timeout_hours: int
    max_concurrent_jobs: int
    invocation_type: str | None = None


def existing_jobs(client, prefix: str) -> dict[str, dict]:
    """The jobs on Bedrock whose name starts with `prefix`, by name (ListModelInvocationJobs, every page; the newest per name)."""
    found: dict[str, dict] = {}
    token = None
    while True:
        page = client.list_model_invocation_jobs(nameContains=prefix, sortBy="CreationTime", sortOrder="Ascending", maxResults=100, **({"nextToken": token} if token else {}))
        for summary in page.get("invocationJobSummaries", []):
            if summary["jobName"].startswith(prefix):
                found[summary["jobName"]] = summary
        token = page.get("nextToken")
        if not token:
            return found


def plan_jobs(files: pl.DataFrame, plan: JobPlan) -> pl.DataFrame:
    """One row per request file (`request_file`, `sha256`, `records`) with its job name and token, status Pending."""
    identities = [job_identity(plan.scope, plan.prefix, plan.model_id, sha, plan.output_uri, plan.role_arn) for sha in files.get_column("sha256")]
    return files.select("request_file", "sha256", "records").with_columns(
        pl.Series("job_name", [name for name, _ in identities], pl.String),
        pl.Series("client_token", [token for _, token in identities], pl.String),
        pl.lit(None, pl.String).alias("job_arn"), pl.lit(PENDING).alias("status"), pl.lit(None, pl.String).alias("message"),
        pl.lit(None, pl.Int64).alias("error_records"),
    ).select(list(JOB_SCHEMA))


def submit(client, jobs: pl.DataFrame, plan: JobPlan, log: Callable[[str], None] = lambda _: None) -> pl.DataFrame:
    """Record the jobs Bedrock has, then create jobs for Pending files while fewer than max_concurrent_jobs are in flight.

    Returns `jobs` with ARNs and statuses. A ServiceQuotaExceededException leaves the file Pending (a later
    run submits it); a ValidationException or AccessDeniedException raises BatchJobError naming the file.
    """
    from botocore.exceptions import ClientError

    known = existing_jobs(client, plan.prefix)
    rows = [dict(row) for row in jobs.iter_rows(named=True)]  # one per request file (tens), not per record
    for row in rows:
        if row["job_name"] in known:
            summary = known[row["job_name"]]
            row.update(job_arn=summary["jobArn"], status=summary["status"], message=summary.get("message"))
    in_flight = sum(row["status"] in IN_FLIGHT for row in rows)
    for row in rows:
        if row["status"] != PENDING or in_flight >= plan.max_concurrent_jobs:
            continue
        try:
            answer = client.create_model_invocation_job(
                jobName=row["job_name"], clientRequestToken=row["client_token"], roleArn=plan.role_arn, modelId=plan.model_id,
                inputDataConfig={"s3InputDataConfig": {"s3Uri": row["request_file"], "s3InputFormat": "JSONL"}},
                outputDataConfig={"s3OutputDataConfig": {"s3Uri": plan.output_uri}},
                timeoutDurationInHours=plan.timeout_hours,
                **({"modelInvocationType": plan.invocation_type} if plan.invocation_type else {}),
            )
        except ClientError as error:
            code, message = error.response["Error"].get("Code", ""), error.response["Error"].get("Message", "")
            if code in ("ServiceQuotaExceededException", "ThrottlingException"):
                log(f"{row['request_file']}: not submitted yet ({code}: {message})")
                break
            raise BatchJobError(f"{row['request_file']}: CreateModelInvocationJob refused ({code}: {message})") from None
        row.update(job_arn=answer["jobArn"], status="Submitted")
        in_flight += 1
        log(f"submitted {row['job_name']} for {row['request_file']} ({row['records']} records): {row['job_arn']}")
    return pl.DataFrame(rows, schema=JOB_SCHEMA)


def refresh(client, jobs: pl.DataFrame) -> pl.DataFrame:
    """`jobs` with each submitted job's status, message and errorRecordCount from GetModelInvocationJob."""
    rows = [dict(row) for row in jobs.iter_rows(named=True)]
    for row in rows:
        if row["job_arn"] is None:
            continue
        job = client.get_model_invocation_job(jobIdentifier=row["job_arn"])
        row.update(status=job["status"], message=job.get("message"), error_records=job.get("errorRecordCount"))
    return pl.DataFrame(rows, schema=JOB_SCHEMA)


def submit_and_record(client, files: pl.DataFrame, plan: JobPlan, log: Callable[[str], None]) -> pl.DataFrame:
    """The jobs of request `files` (`request_file`, `sha256`, `records`) after `submit`, with the statuses Bedrock has now."""
    return refresh(client, submit(client, plan_jobs(files, plan), plan, log))


def all_done(jobs: pl.DataFrame) -> bool:
    """Every request file has a job in a terminal state."""
    return jobs.height > 0 and jobs.get_column("status").is_in(TERMINAL).all()


def problems(jobs: pl.DataFrame) -> list[str]:
    """One line per job that did not complete cleanly, with Bedrock's message."""
    bad = jobs.filter(pl.col("status").is_in(NOT_DONE_WELL))
    return [f"{row['job_name']} ({row['request_file']}): {row['status']}: {row['message'] or 'no message'}" for row in bad.iter_rows(named=True)]
