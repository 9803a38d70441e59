"""The whole judging loop on loopback: v3 judged from v1's translations through Bedrock batch inference.

v1 and v2 are demo batch outputs; v3 has `judge_from: v1`. judge_requests writes v3's request files
into moto S3; judge_jobs submits them to the fake control plane (boto3's real `bedrock` client), at most
two at a time; the batch_jobs_v3 sensor (called as Dagster calls it, on the fake's injected clock) asks for
more submissions, then for v3's ingest once every job is done; v3 is ingested from the output URI with
its missing records quarantined; `tqc run` then makes agreement over v1, v2 and v3 and v3's exports.
A rerun after a crash (the stored job table lost) submits no job twice; `tqc resubmit-missing` then asks
again only the records no output answered, in a fourth job.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import polars as pl
import pytest
import yaml
from click.testing import CliRunner

from tqc_dagster.assets.ingest import QUARANTINED, RECORDS
from tqc_dagster.assets.judging import JOBS, REQUESTS
from tqc_dagster.cli import main
from tqc_dagster.config import load_config
from tqc_dagster.definitions import build_definitions
from tqc_dagster.demo_data import write_demo_data
from tqc_dagster.resources.storage import asset_path
from tqc_dagster_tests.fake_bedrock_batch import running_fake_batch
from tqc_dagster_tests.s3_server import REGION, s3_server  # noqa: F401  (module-scoped fixture)

RECORDS_IN_DEMO = 400
JUDGE_V3 = "us.anthropic.claude-3-7-sonnet-20250219-v1:0"


def write_loop_config(folder: Path, demo: Path, bucket: str, s3_url: str, bedrock_url: str) -> Path:
    raw = demo / "raw" / "translation_eval_cot"
    config = {
        "storage_root": "lake",
        "judge_versions": {
            "v1": {"judge_model": "anthropic.claude-3-5-sonnet-20241022-v2:0", "input": f"{raw}/c35-v2/*/*/*.jsonl.out"},
            "v2": {"judge_model": JUDGE_V3, "input": f"{raw}/c37/*/*/*.jsonl.out"},
            "v3": {
                "judge_model": JUDGE_V3,
                "judge_from": "v1",
                "batch": {
                    "role_arn": "arn:aws:iam::123456789012:role/tqc-batch-inference",
                    "input_uri": f"s3://{bucket}/batch-input/v3/",
                    "output_uri": f"s3://{bucket}/batch-inference-output/translation_eval_cot/v3/",
                    "max_concurrent_jobs": 2,
                    "records_per_file": 150,
                    "min_records_per_job": 5,  # the fake's too: a retry round of a few records is a job
                    "endpoint_url": bedrock_url,
                    "region": REGION,
                },
            },
        },
        "models": {
            "model_a": {"translation_id": 1, "name": "amazon.nova-lite-v1:0"},
            "model_b": {"translation_id": 2, "name": "anthropic.claude-3-5-sonnet-20241022-v2:0"},
        },
        "agreement": {"judges": ["v1", "v2", "v3"]},
        "checks": {"max_quarantine_rate": 0.2},
        "s3": {"endpoint_url": s3_url, "region": REGION},
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tqc.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


class Loop:
    def __init__(self, config_path: Path, instance: dg.DagsterInstance):
        self.config = load_config(config_path)
        self.defs = build_definitions(self.config)
        self.instance = instance
        self.sensor = next(s for s in self.defs.sensors if s.name == "batch_jobs_v3")

    def materialize(self, asset: str, partition: str) -> dg.ExecuteInProcessResult:
        """The asset partition and, for judge_requests, its checks in the same run (as a job or the sensor runs them)."""
        checks = [checks for checks in self.defs.asset_checks if asset == REQUESTS and checks.node_def.name == f"{REQUESTS}_checks"]
        return dg.materialize(
            [*self.defs.assets, *checks], selection=[asset], partition_key=partition, resources=self.defs.resources, instance=self.instance,
        )

    def tick(self) -> list[dg.RunRequest]:
        result = self.sensor(dg.build_sensor_context(instance=self.instance))
        return [] if isinstance(result, dg.SkipReason) else list(result.run_requests)

    def run(self, request: dg.RunRequest) -> None:
        (asset,) = request.asset_selection
        self.materialize(asset.to_user_string(), request.partition_key)

    def stored(self, asset: str, partition: str) -> pl.DataFrame:
        return pl.read_parquet(asset_path(self.config.storage_root, asset, partition))


@pytest.fixture()
def loop(s3_server, tmp_path):  # noqa: F811
    demo = tmp_path / "demo"
    write_demo_data(demo, records=RECORDS_IN_DEMO, seed=5)
    bucket = s3_server.new_bucket()
    with running_fake_batch(s3_server.client(), models=(JUDGE_V3,), min_records=5) as (fake, url), dg.instance_for_test() as instance:
        config_path = write_loop_config(tmp_path / "project", demo, bucket, s3_server.url, url)
        yield Loop(config_path, instance), fake, s3_server, bucket, config_path


def creates(fake) -> int:
    return sum(op == "CreateModelInvocationJob" for op, _ in fake.calls)


def test_v3_is_judged_through_batch_inference_end_to_end(loop):
    run, fake, server, bucket, config_path = loop
    assert run.tick() == []  # nothing asked yet
    run.materialize(RECORDS, "v1")
    checked = run.materialize(REQUESTS, "v3").get_asset_check_evaluations()
    assert sorted((c.check_name, c.passed) for c in checked) == [("schema", True), ("within_batch_quotas", True)]
    requests = run.stored(REQUESTS, "v3")
    files = sorted(k for k in server.keys(bucket, "batch-input/v3/"))
    assert len(files) == 3 and requests.get_column("request_file").n_unique() == 3
    v1 = run.stored(RECORDS, "v1").drop_nulls("record_id")
    not_asked = set(v1.get_column("record_id")) - set(requests.get_column("record_id"))
    # a record is asked unless no copy of it can be read (its only line was cut off): every record accounted for
    assert not_asked == set(v1.group_by("record_id").agg((pl.col("parse_error").fill_null("") == "unreadable_line").all().alias("lost")).filter("lost").get_column("record_id"))

    (submit,) = run.tick()
    assert submit.asset_selection == [dg.AssetKey(JOBS)]
    run.run(submit)
    jobs = run.stored(JOBS, "v3")
    assert sorted(jobs.get_column("status").to_list()) == ["Pending", "Submitted", "Submitted"] and creates(fake) == 2

    # A crash: the run died after submitting, before its job table was stored. The rerun submits nothing again.
    Path(asset_path(run.config.storage_root, JOBS, "v3")).unlink()
    run.materialize(JOBS, "v3")
    assert creates(fake) == 2 and len(fake.jobs) == 2
    assert run.stored(JOBS, "v3").drop("message", "error_records").equals(jobs.drop("message", "error_records"))

    first, second = sorted(jobs.drop_nulls("job_arn").get_column("job_name"))
    fake.outcomes[second] = "PartiallyCompleted"
    fake.advance()
    fake.advance()
    (submit,) = run.tick()  # two finished, one file pending: submit it
    run.run(submit)
    assert creates(fake) == 3 and len(fake.jobs) == 3
    assert run.tick() == []  # judge_jobs holds the statuses Bedrock has: nothing to do
    fake.advance()
    (record,) = run.tick()  # the third job is InProgress now: recorded where Dagster and the CLI see it
    run.run(record)
    assert sorted(run.stored(JOBS, "v3").get_column("status")) == ["Completed", "InProgress", "PartiallyCompleted"]
    fake.advance()
    record, ingest = run.tick()  # every job done: record the final statuses, and ingest v3
    assert record.asset_selection == [dg.AssetKey(JOBS)]
    assert ingest.asset_selection == [dg.AssetKey(RECORDS)] and ingest.partition_key == "v3"
    run.run(record)
    assert [r.run_key for r in run.tick()] == [ingest.run_key]  # the same finished set: the same request, once
    run.run(ingest)

    records = run.stored(RECORDS, "v3")
    missing = records.filter(pl.col("parse_error") == "missing_from_output")
    assert missing.height == fake.missing and records.get_column("record_id").drop_nulls().n_unique() == requests.height

    runner = CliRunner()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DAGSTER_HOME", str(config_path.parent / "dagster_home"))
        result = runner.invoke(main, ["run", "--config", str(config_path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    quarantined = pl.concat([pl.read_parquet(p) for p in sorted(Path(run.config.storage_root, QUARANTINED, "v3").glob("*.parquet"))])
    reasons = dict(quarantined.group_by("reason").len().iter_rows())
    assert reasons["missing_from_output"] == 2 * fake.missing
    assert reasons["batch_error"] > 0 and reasons["truncated_output"] > 0
    agreement = pl.read_parquet(Path(run.config.storage_root, "judge_agreement", "model_a.parquet"))
    assert sorted(set(agreement.select("judge_a", "judge_b").iter_rows())) == [("v1", "v2"), ("v1", "v3"), ("v2", "v3")]
    export = Path(run.config.storage_root, "exports", "v3")
    assert (export / "simple" / "_SUCCESS").exists() or any(export.rglob("_SUCCESS"))
    assert creates(fake) == 3
    estimate = runner.invoke(main, ["estimate", "--config", str(config_path)], catch_exceptions=False)
    assert estimate.exit_code == 0, estimate.output
    assert "judging through Bedrock batch inference" in estimate.output and f"{requests.height:,}" in estimate.output

    # One command asks again only the records no output answered (3 missing, the Bedrock errors), in a 4th job.
    unanswered = records.filter(pl.col("error").is_not_null() | (pl.col("parse_error") == "missing_from_output")).get_column("record_id").unique()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DAGSTER_HOME", str(config_path.parent / "dagster_home"))
        result = runner.invoke(main, ["resubmit-missing", "--config", str(config_path), "--judge-version", "v3"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    again = run.stored(REQUESTS, "v3").filter(pl.col("round") == 1)
    assert sorted(again.get_column("record_id")) == sorted(unanswered) and again.get_column("request_file").str.contains("/retry-1/").all()
    assert creates(fake) == 4 and len(fake.jobs) == 4
    fake.advance()
    fake.advance()
    for request in run.tick():
        run.run(request)
    records = run.stored(RECORDS, "v3")
    assert records.filter(pl.col("parse_error") == "missing_from_output").is_empty()
    answered = records.filter(pl.col("error").is_null() & pl.col("judge_entries").is_not_null()).get_column("record_id")
    assert set(unanswered) <= set(answered)


def test_failed_jobs_leave_every_record_quarantined_as_missing(loop):
    """Every job failed (no output at all): the ingest still runs and accounts for every record asked."""
    run, fake, _, _, _ = loop
    run.materialize(RECORDS, "v1")
    run.materialize(REQUESTS, "v3")
    run.materialize(JOBS, "v3")  # two of three submitted (max_concurrent_jobs 2): the third waits
    assert run.tick() == []
    fake.outcomes.update({job["jobName"]: "Failed" for job in fake.jobs.values()})
    fake.advance()
    fake.advance()
    (submit,) = run.tick()
    run.run(submit)
    fake.outcomes.update({job["jobName"]: "Failed" for job in fake.jobs.values()})
    fake.advance()
    fake.advance()
    for request in run.tick():
        run.run(request)
    jobs = run.stored(JOBS, "v3")
    records = run.stored(RECORDS, "v3")
    assert set(jobs.get_column("status")) == {"Failed"} and jobs.get_column("message").str.contains("Access Denied").all()
    assert records.height == run.stored(REQUESTS, "v3").height
    assert set(records.get_column("parse_error")) == {"missing_from_output"}
