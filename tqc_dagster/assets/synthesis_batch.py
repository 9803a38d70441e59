"""Bulk synthesis through Bedrock batch inference: synthesis_requests -> synthesis_jobs -> (sensor) -> synthetic_samples.

With `synthesis.batch`, a partition whose first round (round 0 of the bedrock backend) has at least
`synthesis.batch.min_requests` requests sends that round through batch inference at the batch price:

- synthesis_requests writes round 0's Converse requests as request files under `<input_uri>/<judge version>/<model>/`
  (recordId: the request's cache key; core/synthesis/batch.py), cut and written like judge_requests (batch_requests.py);
- synthesis_jobs submits one job per file (Converse invocation type) with judging's submission code (bedrock/batch.py),
  outputs under `<output_uri>/<judge version>/<model>/`;
- the `synthesis_batch_jobs` sensor (batch_sensors.py) requests synthetic_samples of the partition once its jobs are done;
- synthetic_samples first puts every batch answer that passes the online path's own check (`usable_answer`) into the
  response cache under its request's key (`prefill_from_batch`), then runs the backend as always: round 0 finds those
  answers in the cache, and only the requests whose answers were rejected, failed or are missing go online.

Below the threshold nothing is written and round 0 goes online, as without `synthesis.batch`.
"""


from functools import partial
from pathlib import PurePosixPath

import dagster as dg
import polars as pl

from tqc_dagster.assets import OWNERS, storage_kinds
from tqc_dagster.assets.ingest import PROCESSED
from tqc_dagster.assets.judging import jobs_output
from tqc_dagster.assets.metadata import column_schema, counts_dict, table_metadata
from tqc_dagster.batch_requests import request_files, stored_asset, write_request_files
from tqc_dagster.bedrock.cache import request_key
from tqc_dagster.bedrock.batch import JOB_SCHEMA, TERMINAL, JobPlan, control_client, problems, refresh, submit_and_record, synthesis_prefix
from tqc_dagster.config import TqcConfig, batch_output_glob
from tqc_dagster.core.split import source_is_test
from tqc_dagster.core.synthesis import deficits
from tqc_dagster.core.synthesis.batch import ANSWER_SCHEMA, converse_answer, read_answers, request_lines
from tqc_dagster.core.synthesis.bedrock import Accept, BedrockBackend
from tqc_dagster.partitions import FOLLOW_UPSTREAM, split_key
from tqc_dagster.resources.bedrock import BedrockResource
from tqc_dagster.schemas import SynthesisJobs, SynthesisRequests
from tqc_dagster.stores import join, store_for

SYNTHESIS_REQUESTS = "synthesis_requests"
SYNTHESIS_JOBS = "synthesis_jobs"
SENSOR = "synthesis_batch_jobs"
INVOCATION_TYPE = "Converse"
REQUEST_COLUMNS = {"record_id": pl.String, "round": pl.Int64, "request_file": pl.String, "line_number": pl.Int64, "bytes": pl.Int64, "sha256": pl.String}


class BatchNotReady(RuntimeError):
    """synthetic_samples of a partition whose round 0 goes through batch, before its jobs are done (or submitted)."""


def bedrock_backend(config: TqcConfig, client, verifier=None) -> BedrockBackend:
    """The bedrock synthesis backend of the config, on `client` (a ConverseClient), with `verifier` (None: off)."""
    synthesis, split = config.synthesis, config.split
    return BedrockBackend(
        client, config.labels, synthesis.samples_per_request, synthesis.max_requests_per_group, config.bedrock.max_tokens,
        partial(source_is_test, test_ratio=split.test_ratio, seed=split.seed), verifier,
    )


def round_zero(config: TqcConfig, backend: BedrockBackend, processed: pl.DataFrame) -> list[tuple[dict, Accept]]:
    """Round 0 of a partition: its (Converse request, accept) pairs (BedrockBackend.first_round)."""
    return backend.first_round(processed, deficits(processed, config.synthesis.min_samples), config.synthesis.seed)


def synthesis_plan(config: TqcConfig, judge_version: str, model: str) -> JobPlan:
    """The jobs of one partition's bulk synthesis: the synthesis model, the partition's own output folder, Converse bodies."""
    batch = config.synthesis.batch
    return JobPlan(
        f"synthesis|{judge_version}|{model}", synthesis_prefix(judge_version, model), config.bedrock.model_id, batch.role_arn,
        join(batch.output_uri, judge_version, model) + "/", batch.timeout_hours, batch.max_concurrent_jobs, INVOCATION_TYPE,
    )


def _why_online(requests: int, threshold: int) -> str:
    return f"round 0 has {requests} requests, fewer than synthesis.batch.min_requests ({threshold}): it goes online"


def build_synthesis_batch_assets(config: TqcConfig, partitions: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    batch = config.synthesis.batch
    if batch is None:
        return []
    kinds = storage_kinds(config.storage_root)
    common = {"group_name": "synthesis", "owners": OWNERS["synthesis"], "partitions_def": partitions}

    @dg.asset(
        name=SYNTHESIS_REQUESTS,
        kinds=kinds | {"bedrock"} | ({"s3"} if batch.input_uri.startswith("s3://") else set()),
        automation_condition=FOLLOW_UPSTREAM,
        ins={PROCESSED: dg.AssetIn()},
        description=f"Round 0 of the partition's bedrock synthesis as Bedrock batch inference requests (Converse bodies, recordId "
        f"the request's cache key), cut into files within the batch quotas under synthesis.batch.input_uri; empty when round 0 "
        f"has fewer than {batch.min_requests} requests (it then goes online). One row per request: its file and line.",
        metadata=column_schema(SynthesisRequests),
        **common,
    )
    def synthesis_requests(context: dg.AssetExecutionContext, processed_samples: pl.DataFrame, bedrock: dg.ResourceParam[BedrockResource]):
        judge_version, model = split_key(context.partition_key)
        pairs = round_zero(config, bedrock_backend(config, bedrock.client(log=context.log.info)), processed_samples)
        if len(pairs) < batch.min_requests:
            written, note = pl.DataFrame(schema=REQUEST_COLUMNS), _why_online(len(pairs), batch.min_requests)
            context.log.info(note)
        else:
            lines = request_lines([request for request, _ in pairs])
            written = write_request_files(lines, batch, config.s3, join(batch.input_uri, judge_version, model))
            note = f"round 0's {written.height} requests written for batch inference"
        SynthesisRequests.validate(written)
        yield dg.Output(
            written,
            metadata={"dagster/row_count": written.height, "round_0_requests": len(pairs), "batch": note, "files": table_metadata(request_files(written), 100),
                      "request_bytes": int(written.get_column("bytes").sum() or 0)},
        )

    @dg.asset(
        name=SYNTHESIS_JOBS,
        kinds={"bedrock", *(k for k in kinds if k != "polars")},
        ins={SYNTHESIS_REQUESTS: dg.AssetIn()},
        description=f"One Bedrock batch inference job per synthesis request file (Converse invocation type), never two: named and "
        f"tokened by the file's content hash (as judge_jobs); at most synthesis.batch.max_concurrent_jobs in flight, the others "
        f"Pending until the {SENSOR} sensor asks again. One row per file: job ARN, status and Bedrock's message.",
        metadata=column_schema(SynthesisJobs),
        **common,
    )
    def synthesis_jobs(context: dg.AssetExecutionContext, synthesis_requests: pl.DataFrame):
        plan = synthesis_plan(config, *split_key(context.partition_key))
        if synthesis_requests.is_empty():
            jobs = pl.DataFrame(schema=JOB_SCHEMA)
        else:
            client = control_client(batch, config.bedrock.region)
            jobs = submit_and_record(client, request_files(synthesis_requests), plan, context.log.info)
        yield jobs_output(SynthesisJobs.validate(jobs), context.log)

    return [synthesis_requests, synthesis_jobs]


def prefill_from_batch(config: TqcConfig, partition: str, pairs: list[tuple[dict, Accept]], cache, log) -> dict:
    """Put the partition's usable batch answers into the response cache `cache` (bedrock.cache.ResponseCache); what it did.

    `pairs` are round 0's (request, accept) of the partition now. Below synthesis.batch.min_requests nothing is read.
    Raises BatchNotReady, naming what to do, when round 0 goes through batch but its requests are not stored or were
    made from other samples, no job was submitted, or a job is not done (statuses asked of Bedrock now, so a job that
    finished since the sensor's last tick counts as done). An answer is cached only when it passes its request's
    `accept` (the online path's `usable_answer`) and no accepted answer is cached already; the others go online.
    """
    batch = config.synthesis.batch
    if len(pairs) < batch.min_requests:
        return {"batch": _why_online(len(pairs), batch.min_requests)}
    judge_version, model = split_key(partition)
    accepts = {request_key(request): accept for request, accept in pairs}
    requests, jobs = stored_asset(config, SYNTHESIS_REQUESTS, judge_version, model), stored_asset(config, SYNTHESIS_JOBS, judge_version, model)
    if requests is None or requests.is_empty() or set(requests.get_column("record_id")) != set(accepts):
        state = "is not materialized" if requests is None else "was made from other samples (or none)"
        raise BatchNotReady(f"round 0 of {partition} has {len(pairs)} requests (synthesis.batch.min_requests {batch.min_requests}), so it goes through "
                            f"batch inference, but {SYNTHESIS_REQUESTS} of {partition} {state}: materialize {SYNTHESIS_REQUESTS} and turn on the {SENSOR} sensor")
    if jobs is None or jobs.is_empty():
        raise BatchNotReady(f"no batch job of {partition} is recorded yet: turn on the {SENSOR} sensor (it submits them and requests synthetic_samples once they are done)")
    if set(jobs.get_column("sha256")) != set(request_files(requests).get_column("sha256")):  # round 0 changed since they were submitted
        raise BatchNotReady(f"the batch jobs recorded for {partition} were made for other request files than {SYNTHESIS_REQUESTS} holds now: "
                            f"materialize {SYNTHESIS_JOBS} of {partition} (the {SENSOR} sensor asks for it) and wait for its jobs")
    jobs = refresh(control_client(batch, config.bedrock.region), jobs)
    waiting = jobs.filter(~pl.col("status").is_in(TERMINAL))
    if waiting.height:
        named = ", ".join(f"{row['job_name']} ({row['status']})" for row in waiting.iter_rows(named=True))
        raise BatchNotReady(f"batch jobs of {partition} are not done: {named}; the {SENSOR} sensor requests synthetic_samples once they are")
    for problem in problems(jobs):
        log.warning(problem)
    answers = _answers(config, synthesis_plan(config, judge_version, model), jobs).filter(pl.col("record_id").is_in(list(accepts)))
    cached = rejected = 0
    for record_id, text, stop_reason, error, input_tokens, output_tokens in answers.iter_rows():  # one per request, not per sample
        answer = converse_answer(text, stop_reason, input_tokens, output_tokens) if error is None and text is not None else None
        if answer is None or not accepts[record_id](answer):
            rejected += 1
            continue
        held = cache.get(record_id)
        if held is None or not accepts[record_id](held):
            cache.put(record_id, answer)
        cached += 1
    return _prefill_report(config, jobs, answers, len(accepts), cached, rejected)


def _answers(config: TqcConfig, plan: JobPlan, jobs: pl.DataFrame) -> pl.DataFrame:
    """The output lines of the partition's jobs: `<output_uri>/<job id>/*.jsonl.out` of the jobs in `jobs` only."""
    job_ids = {arn.rsplit("/", 1)[-1] for arn in jobs.get_column("job_arn").drop_nulls()}
    pattern = batch_output_glob(plan.output_uri)
    store = store_for(pattern, config.s3)
    frames = []
    for uri in store.glob(pattern):
        if PurePosixPath(uri.replace("s3://", "/", 1)).parent.name in job_ids:
            with store.local_copy(uri) as path:
                frames.append(read_answers([path]))
    return pl.concat(frames).unique("record_id", keep="first", maintain_order=True) if frames else pl.DataFrame(schema=ANSWER_SCHEMA)


def _prefill_report(config: TqcConfig, jobs: pl.DataFrame, answers: pl.DataFrame, requests: int, cached: int, rejected: int) -> dict:
    """What batch did for round 0, and its cost at the batch price beside the on-demand price of the same tokens."""
    tokens = (int(answers.get_column("input_tokens").sum() or 0), int(answers.get_column("output_tokens").sum() or 0))
    model = config.bedrock.model_id
    batch_price, price = config.bedrock.batch_prices.get(model), config.bedrock.prices.get(model)
    return {
        "batch": f"round 0 through batch inference ({jobs.height} jobs)",
        "round_0_requests": requests,
        "round_0_from_batch": cached,
        "round_0_online": requests - cached,
        "batch_answers_rejected": rejected,
        "batch_answers_missing": requests - answers.height,
        "batch_input_tokens": tokens[0],
        "batch_output_tokens": tokens[1],
        "batch_cost_usd": None if batch_price is None else round(batch_price.cost(*tokens), 4),
        "same_tokens_on_demand_usd": None if price is None else round(price.cost(*tokens), 4),
        "batch_jobs": counts_dict(jobs, "status"),
    }
