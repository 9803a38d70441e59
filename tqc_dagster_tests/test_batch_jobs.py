"""Batch jobs through boto3's real `bedrock` client against the fake control plane, with S3 on moto."""

from __future__ import annotations

import json

import boto3
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from botocore.exceptions import ClientError

from tqc_dagster.bedrock.batch import PENDING, BatchJobError, JobPlan, all_done, job_identity, name_prefix, plan_jobs, problems, refresh, submit, synthesis_prefix
from tqc_dagster.core.batch_outputs import read_records
from tqc_dagster_tests.fake_bedrock_batch import NAME as JOB_NAME
from tqc_dagster_tests.fake_bedrock_batch import running_fake_batch
from tqc_dagster_tests.s3_server import REGION, s3_server  # noqa: F401  (module-scoped fixture)

MODEL = "anthropic.claude-3-5-sonnet-20241022-v2:0"
ROLE = "arn:aws:iam::123456789012:role/tqc-batch"
PROMPT = '## Source Text\n<source>\n<content>Lodge Skillet {i}</content>\n</source>\n\n## Translations\n<translations target_lang="zh-cn">\n<translation id="1">\n<translator>machine</translator>\n<content>锅 {i}</content>\n</translation>\n<translation id="2">\n<translator>expert</translator>\n<content>平底锅 {i}</content>\n</translation>\n</translations>\n'


def request_file(s3, bucket: str, name: str, count: int, start: int = 0) -> str:
    lines = [
        json.dumps({"recordId": f"meta_Kitchen_{i // 100}_{i % 100}", "modelInput": {
            "anthropic_version": "bedrock-2023-05-31", "max_tokens": 4096, "stop_sequences": ["```"], "system": "rubric",
            "messages": [{"role": "user", "content": [{"type": "text", "text": PROMPT.format(i=i)}]},
                         {"role": "assistant", "content": [{"type": "text", "text": "```json"}]}]}}, ensure_ascii=False)
        for i in range(start, start + count)
    ]
    s3.put_object(Bucket=bucket, Key=f"batch-input/v3/{name}", Body=("\n".join(lines) + "\n").encode())
    return f"s3://{bucket}/batch-input/v3/{name}"


@pytest.fixture()
def setup(s3_server):  # noqa: F811
    bucket = s3_server.new_bucket()
    s3 = s3_server.client()
    files = pl.DataFrame({
        "request_file": [request_file(s3, bucket, "part-0.jsonl", 120), request_file(s3, bucket, "part-1.jsonl", 110, start=120)],
        "sha256": ["a" * 64, "b" * 64], "records": [120, 110],
    })
    plan = JobPlan("v3", name_prefix("v3"), MODEL, ROLE, f"s3://{bucket}/batch-output/v3/", 24, max_concurrent_jobs=1)
    with running_fake_batch(s3) as (fake, url):
        client = boto3.client("bedrock", endpoint_url=url, region_name=REGION)
        yield fake, client, plan_jobs(files, plan), plan, s3_server, bucket


def creates(fake) -> int:
    return sum(op == "CreateModelInvocationJob" for op, _ in fake.calls)


def test_at_most_max_concurrent_in_flight_and_never_twice(setup):
    fake, client, jobs, plan, _, _ = setup
    jobs = submit(client, jobs, plan)
    assert jobs.get_column("status").to_list() == ["Submitted", PENDING]
    assert len(fake.jobs) == 1
    again = submit(client, jobs, plan)  # a rerun while the first is in flight: nothing new
    assert again.equals(jobs) and len(fake.jobs) == 1
    fake.advance()
    fake.advance()
    jobs = submit(client, refresh(client, jobs), plan)
    assert jobs.get_column("status").to_list() == ["Completed", "Submitted"]
    assert len(fake.jobs) == 2
    fake.outcomes[jobs.get_column("job_name")[1]] = "PartiallyCompleted"
    fake.advance()
    fake.advance()
    jobs = refresh(client, jobs)
    assert all_done(jobs)
    assert problems(jobs) == [f"{jobs.get_column('job_name')[1]} ({jobs.get_column('request_file')[1]}): PartiallyCompleted: Some records could not be processed"]


def test_a_crash_after_create_resends_the_same_token_and_gets_the_same_job(setup):
    fake, client, jobs, plan, _, _ = setup
    row = jobs.row(0, named=True)
    arguments = dict(jobName=row["job_name"], clientRequestToken=row["client_token"], roleArn=ROLE, modelId=MODEL,
                     inputDataConfig={"s3InputDataConfig": {"s3Uri": row["request_file"]}},
                     outputDataConfig={"s3OutputDataConfig": {"s3Uri": plan.output_uri}})
    first = client.create_model_invocation_job(**arguments)["jobArn"]
    # the process died before recording the ARN; the rerun lists, finds it by name, and creates nothing
    jobs = submit(client, jobs, plan)
    assert jobs.get_column("job_arn")[0] == first and len(fake.jobs) == 1
    assert client.create_model_invocation_job(**arguments)["jobArn"] == first and len(fake.jobs) == 1


def test_outputs_are_read_by_the_project_reader(setup, tmp_path):
    fake, client, jobs, plan, server, bucket = setup
    plan = JobPlan(**{**plan.__dict__, "max_concurrent_jobs": 5})
    jobs = submit(client, jobs, plan)
    fake.outcomes[jobs.get_column("job_name")[1]] = "Expired"
    fake.advance()
    fake.advance()
    jobs = refresh(client, jobs)
    assert jobs.get_column("status").to_list() == ["Completed", "Expired"]
    keys = server.keys(bucket, "batch-output/v3/")
    outs = [key for key in keys if key.endswith(".jsonl.out")]
    assert len(outs) == 2 and sum(key.endswith("manifest.json.out") for key in keys) == 2
    paths = []
    for index, key in enumerate(outs):
        paths.append(tmp_path / f"{index}.jsonl.out")
        paths[-1].write_bytes(server.read(bucket, key))
    records = read_records([str(p) for p in paths], [1, 2]).records
    assert records.height == 120 + 55
    assert records.filter(pl.col("error").is_not_null()).height == 3 + 1  # every 40th record of each file
    assert records.filter(pl.col("stop_reason") == "max_tokens").height == 2 + 1  # every 55th
    good = records.filter(pl.col("parse_error").is_null())
    assert good.height == records.height - 4 - 3
    assert good.get_column("judge_entries").list.len().eq(2).all()


def test_errors_are_real_rest_json_errors(setup):
    fake, client, jobs, plan, _, _ = setup
    with pytest.raises(BatchJobError, match="part-0.jsonl: CreateModelInvocationJob refused \\(ValidationException: The provided model identifier is invalid"):
        submit(client, jobs, JobPlan(**{**plan.__dict__, "model_id": "anthropic.unknown"}))
    fake.max_jobs = 1
    jobs = submit(client, jobs, JobPlan(**{**plan.__dict__, "max_concurrent_jobs": 5}))
    assert jobs.get_column("status").to_list() == ["Submitted", PENDING]  # quota exceeded: waits, no error
    arn = jobs.get_column("job_arn")[0]
    client.stop_model_invocation_job(jobIdentifier=arn)
    fake.advance()
    assert client.get_model_invocation_job(jobIdentifier=arn)["status"] == "Stopped"
    with pytest.raises(ClientError, match="ValidationException"):
        client.stop_model_invocation_job(jobIdentifier=arn)
    with pytest.raises(ClientError, match="ResourceNotFoundException"):
        client.get_model_invocation_job(jobIdentifier="abcdefabcdef")
    with pytest.raises(ClientError, match="ValidationException"):
        client.create_model_invocation_job(jobName="tiny", roleArn=ROLE, modelId=MODEL,
                                           inputDataConfig={"s3InputDataConfig": {"s3Uri": "s3://nowhere/x.jsonl"}},
                                           outputDataConfig={"s3OutputDataConfig": {"s3Uri": plan.output_uri}})


def test_throttling_is_retried_by_botocore(setup):
    """The project's control client (standard retry mode) rides out a throttled request; nothing is submitted twice."""
    from types import SimpleNamespace

    from tqc_dagster.bedrock.batch import control_client

    fake, plain, jobs, plan, _, _ = setup
    client = control_client(SimpleNamespace(region=REGION, endpoint_url=plain.meta.endpoint_url), REGION)
    fake.throttle = 2
    jobs = submit(client, jobs, plan)
    assert jobs.get_column("status").to_list() == ["Submitted", PENDING]
    assert sum(op == "Throttled" for op, _ in fake.calls) == 2 and len(fake.jobs) == 1



NAMES = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_]{0,63}", fullmatch=True)  # config_base.JudgeVersionName
MODELS = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", fullmatch=True)  # config_base.ModelName


@settings(max_examples=300, deadline=None)
@given(judge_version=NAMES, other=NAMES, model=MODELS, sha=st.text("0123456789abcdef", min_size=64, max_size=64))
def test_synthesis_and_judging_jobs_never_list_as_each_other(judge_version, other, model, sha):
    """Job names are valid ModelInvocationJobNames that keep at least 23 hex digits of their hash (files of one version
    never share a name, however long its name), and no synthesis job name starts with a judging prefix or back."""
    judged, token = job_identity(other, name_prefix(other), MODEL, sha, "s3://b/out/", ROLE)
    made, made_token = job_identity(f"synthesis|{judge_version}|{model}", synthesis_prefix(judge_version, model), MODEL, sha, "s3://b/out/", ROLE)
    for name, prefix, digest in ((judged, name_prefix(other), token), (made, synthesis_prefix(judge_version, model), made_token)):
        assert len(name) <= 63 and JOB_NAME.fullmatch(name)
        assert name.startswith(prefix) and len(name) - len(prefix) >= 23 and digest.startswith(name[len(prefix):])
    assert not made.startswith(name_prefix(other)) and not judged.startswith(synthesis_prefix(judge_version, model))
