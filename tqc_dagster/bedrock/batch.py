"""Bedrock batch inference jobs of a judged version: submit once per request file, poll, report.

Through boto3's `bedrock` client (the control plane: CreateModelInvocationJob, GetModelInvocationJob,
ListModelInvocationJobs; AWS API reference, https://docs.aws.amazon.com/bedrock/latest/APIReference/).
A job is named, and its clientRequestToken made, from the SHA-256 of everything that shapes it (judge
version, model, request file content, output URI, role), so:

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
    """boto3's `bedrock` client for `batch` (config.JudgeBatch): its region (else `region`) and endpoint_url."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "bedrock", region_name=batch.region or region, endpoint_url=batch.endpoint_url,
        config=Config(retries={"mode": "standard", "max_attempts": 8}),
    )


def name_prefix(judge_version: str) -> str:
    """Job names of a judge version start with this (ModelInvocationJobName allows no `_`; version names have no `-`)."""
    return f"tqc-{judge_version.replace('_', '-')}-"


def job_identity(judge_version: str, model_id: str, sha256: str, output_uri: str, role_arn: str) -> tuple[str, str]:
    """(job name, client request token) of one request file: 63 and 64 characters at most, from its content hash."""
    digest = hashlib.sha256("|".join((judge_version, model_id, sha256, output_uri, role_arn)).encode()).hexdigest()
    prefix = name_prefix(judge_version)
    return (prefix + digest)[:63], digest


@dataclass(frozen=True)
class JobPlan:
    """What to submit for one judged version."""

    judge_version: str
    model_id: str
    role_arn: str
    output_uri: str
    timeout_hours: int
    max_concurrent_jobs: int


def existing_jobs(client, judge_version: str) -> dict[str, dict]:
    """This version's jobs on Bedrock by name (ListModelInvocationJobs, every page; the newest per name)."""
    found: dict[str, dict] = {}
    token = None
    while True:
        page = client.list_model_invocation_jobs(nameContains=name_prefix(judge_version), sortBy="CreationTime", sortOrder="Ascending", maxResults=100, **({"nextToken": token} if token else {}))
        for summary in page.get("invocationJobSummaries", []):
            if summary["jobName"].startswith(name_prefix(judge_version)):
                found[summary["jobName"]] = summary
        token = page.get("nextToken")
        if not token:
            return found


def plan_jobs(files: pl.DataFrame, plan: JobPlan) -> pl.DataFrame:
    """One row per request file (`request_file`, `sha256`, `records`) with its job name and token, status Pending."""
    identities = [job_identity(plan.judge_version, plan.model_id, sha, plan.output_uri, plan.role_arn) for sha in files.get_column("sha256")]
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

    known = existing_jobs(client, plan.judge_version)
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


def all_done(jobs: pl.DataFrame) -> bool:
    """Every request file has a job in a terminal state."""
    return jobs.height > 0 and jobs.get_column("status").is_in(TERMINAL).all()


def problems(jobs: pl.DataFrame) -> list[str]:
    """One line per job that did not complete cleanly, with Bedrock's message."""
    bad = jobs.filter(pl.col("status").is_in(NOT_DONE_WELL))
    return [f"{row['job_name']} ({row['request_file']}): {row['status']}: {row['message'] or 'no message'}" for row in bad.iter_rows(named=True)]
