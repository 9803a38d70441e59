"""The config of Bedrock batch inference: judge versions judged through it (`judge_versions.<v>.batch`: the batch
quotas, the judge prompt template and the job settings) and bulk synthesis (`synthesis.batch`). Part of the project
config (config.py)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field, model_validator

from tqc_dagster.config_base import EndpointUrl, Location, Region, Text, _Strict, across, template_with
from tqc_dagster.core.judge_prompt import JUDGE_PREFILL, JUDGE_STOP, JUDGE_SYSTEM_PROMPT, JUDGE_TRANSLATION_TEMPLATE, JUDGE_TRANSLATORS, JUDGE_USER_TEMPLATE

# Bedrock batch inference quotas (AWS General Reference, "Amazon Bedrock endpoints and quotas",
# https://docs.aws.amazon.com/general/latest/gr/bedrock.html#limits_bedrock, the quotas named by the user guide's
# "Format and upload your batch inference data"); defaults per account and model, adjustable in Service Quotas.
BATCH_RECORDS_PER_FILE = 50_000  # "Records per input file per batch inference job"
BATCH_RECORDS_PER_JOB = 50_000  # "Records per batch inference job"
BATCH_MIN_RECORDS_PER_JOB = 100  # "Minimum number of records per batch inference job"
BATCH_FILE_BYTES = 1_000_000_000  # "Batch inference input file size" (1 GB)
BATCH_JOB_BYTES = 5_000_000_000  # "Batch inference job size" (5 GB)
BATCH_CONCURRENT_JOBS = 10  # "Sum of in-progress and submitted batch inference jobs" (per base model)


class JudgePrompt(_Strict):
    """The judge request of one record, in the Anthropic Messages body (AWS, "Anthropic Claude Messages API").

    The defaults are the layout of the real judge jobs (demo_data writes it; core.batch_outputs reads it back):
    the rubric as system, `<source>` and `<translations target_lang=...>` blocks, one `<translation id="N">`
    per model of `models` in translation-id order, and an assistant prefill the reply continues.
    """

    system: Text = Field(JUDGE_SYSTEM_PROMPT, description="the rubric")
    user_template: Annotated[Text, AfterValidator(template_with(frozenset({"source", "target_lang", "translations"})))] = JUDGE_USER_TEMPLATE
    translation_template: Annotated[Text, AfterValidator(template_with(frozenset({"id", "translator", "text"})))] = JUDGE_TRANSLATION_TEMPLATE
    translators: dict[int, Text] = Field(
        default_factory=lambda: dict(JUDGE_TRANSLATORS), description="the <translator> of each translation id; others: machine"
    )
    prefill: str = Field(JUDGE_PREFILL, description="the assistant turn the reply continues; empty: none")
    stop_sequences: list[Text] = Field(default_factory=lambda: [JUDGE_STOP], max_length=8)
    max_tokens: int = Field(4096, ge=1, le=128_000)
    anthropic_version: Text = "bedrock-2023-05-31"


class BatchJobs(_Strict):
    """Where and how Bedrock batch inference jobs run (CreateModelInvocationJob, one job per input file): the fields
    judging (JudgeBatch) and bulk synthesis (SynthesisBatch) share."""

    role_arn: Annotated[str, Field(pattern=r"^arn:aws(-[^:]+)?:iam::([0-9]{12})?:role/.+$")] = Field(
        description="the service role Bedrock assumes to read input_uri and write output_uri"
    )
    input_uri: Location = Field(description="folder the request files (.jsonl) are written to: s3://bucket/prefix/ (local for tests)")
    output_uri: Location = Field(description="folder Bedrock writes <job id>/<file>.jsonl.out and manifest.json.out to")
    max_concurrent_jobs: int = Field(BATCH_CONCURRENT_JOBS, ge=1, le=1000, description="jobs Submitted..InProgress at once")
    records_per_file: int = Field(min(BATCH_RECORDS_PER_FILE, BATCH_RECORDS_PER_JOB), ge=1)
    min_records_per_job: int = Field(BATCH_MIN_RECORDS_PER_JOB, ge=1)
    max_file_bytes: int = Field(min(BATCH_FILE_BYTES, BATCH_JOB_BYTES), ge=1024)
    timeout_hours: int = Field(24, ge=24, le=168, description="timeoutDurationInHours of each job (AWS: 24 to 168)")
    region: Region | None = Field(None, description="null: bedrock.region")
    endpoint_url: EndpointUrl | None = Field(None, description="the Bedrock control plane; null: AWS")

    @model_validator(mode="wrap")
    @classmethod
    def _fits(cls, data, handler):
        batch = handler(data)
        if batch.min_records_per_job > batch.records_per_file:
            message = f"min_records_per_job ({batch.min_records_per_job}) must not exceed records_per_file ({batch.records_per_file})"
            raise across(cls.__name__, data, ("min_records_per_job", "records_per_file"), message)
        return batch


class JudgeBatch(BatchJobs):
    """A judge version judged by Bedrock batch inference."""

    prompt: JudgePrompt = JudgePrompt()


class SynthesisBatch(BatchJobs):
    """Bulk synthesis (`synthesis.batch`): a partition whose first round has at least `min_requests` requests sends that
    round through Bedrock batch inference (jobs of the Converse invocation type); the rest goes online."""

    min_requests: int | None = Field(
        None, ge=1, description="a partition's first round goes through batch from this many requests; below it, online. null: min_records_per_job"
    )

    @model_validator(mode="wrap")
    @classmethod
    def _a_job_takes_it(cls, data, handler):
        batch = handler(data)
        if batch.min_requests is None:
            return batch.model_copy(update={"min_requests": batch.min_records_per_job})
        if batch.min_requests < batch.min_records_per_job:
            message = f"min_requests ({batch.min_requests}) must be at least min_records_per_job ({batch.min_records_per_job}): Bedrock refuses a smaller job"
            raise across(cls.__name__, data, ("min_requests", "min_records_per_job"), message)
        return batch
