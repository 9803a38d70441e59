"""Bulk synthesis through Bedrock batch inference, on loopback: moto S3, the fake control plane, the fake Converse endpoint.

A partition with a large deficit: synthesis_requests writes round 0's Converse requests into moto S3;
synthesis_jobs submits them (Converse invocation type) to the fake control plane, at most two at a time, once
(a rerun after a crash submits nothing twice); the synthesis_batch_jobs sensor sees them complete and requests
synthetic_samples, which puts the usable batch answers into the response cache and sends only the rest (rejected,
cut, failed, missing answers) to the fake Converse endpoint. The samples are the same as a run that asks everything
online, and byte for byte the same as a run on the same cached answers.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
import yaml
from click.testing import CliRunner

from tqc_dagster.assets.samples import SYNTHETIC_SAMPLES
from tqc_dagster.assets.synthesis_batch import SENSOR, SYNTHESIS_JOBS, SYNTHESIS_REQUESTS
from tqc_dagster.cli import main
from tqc_dagster.config import load_config
from tqc_dagster.definitions import build_definitions
from tqc_dagster.estimate import estimate
from tqc_dagster.resources.storage import asset_path
from tqc_dagster_tests.bedrock_helpers import use_dummy_aws
from tqc_dagster_tests.conftest import write_config
from tqc_dagster_tests.fake_bedrock import FakeBedrock
from tqc_dagster_tests.fake_bedrock_batch import running_fake_batch
from tqc_dagster_tests.s3_server import REGION, s3_server  # noqa: F401  (module-scoped fixture)

MODEL = "anthropic.claude-3-5-sonnet-20241022-v2:0"  # bedrock.model_id
PARTITION = "v1|model_a"
SELECT = "judge_records,raw_judgments,processed_samples,quarantined_judgments"
MIN_SAMPLES = 12
SAMPLES_PER_REQUEST = 12  # one request fills a group: no later round unless round 0's answer is unusable


def batch_settings(bucket: str, control_url: str) -> dict:
    return {
        "role_arn": "arn:aws:iam::123456789012:role/tqc-batch-inference",
        "input_uri": f"s3://{bucket}/synthesis-input/",
        "output_uri": f"s3://{bucket}/synthesis-output/",
        "max_concurrent_jobs": 2,
        "records_per_file": 40,
        "min_records_per_job": 5,  # the fake's too
        "min_requests": 20,
        "endpoint_url": control_url,
        "region": REGION,
    }


def project(folder: Path, demo_dir: Path, converse_url: str, s3_url: str, batch: dict | None, cache_dir: str | None = None) -> Path:
    synthesis = {"backend": "bedrock", "min_samples": MIN_SAMPLES, "samples_per_request": SAMPLES_PER_REQUEST, **({"batch": batch} if batch else {})}
    bedrock = {"endpoint_url": converse_url, "requests_per_minute": 60_000, "tokens_per_minute": 500_000_000, "max_workers": 8,
               **({"cache_dir": cache_dir} if cache_dir else {})}
    return write_config(folder, demo_dir, synthesis=synthesis, bedrock=bedrock, s3={"endpoint_url": s3_url, "region": REGION})


class Project:
    def __init__(self, config_path: Path, instance: dg.DagsterInstance):
        self.config = load_config(config_path)
        self.defs = build_definitions(self.config)
        self.instance = instance

    def materialize(self, asset: str) -> dg.ExecuteInProcessResult:
        return dg.materialize(self.defs.assets, selection=[asset], partition_key=PARTITION, resources=self.defs.resources, instance=self.instance, raise_on_error=False)

    def failure(self, asset: str) -> str:
        result = self.materialize(asset)
        assert not result.success
        return result.get_step_failure_events()[0].step_failure_data.error.to_string()

    def tick(self) -> list[dg.RunRequest]:
        sensor = next(s for s in self.defs.sensors if s.name == SENSOR)
        result = sensor(dg.build_sensor_context(instance=self.instance))
        return [] if isinstance(result, dg.SkipReason) else list(result.run_requests)

    def stored(self, asset: str) -> pl.DataFrame:
        return pl.read_parquet(self.path(asset))

    def path(self, asset: str) -> str:
        return asset_path(self.config.storage_root, asset, *PARTITION.split("|"))

    def metadata(self, asset: str) -> dict:
        event = self.instance.get_latest_materialization_event(dg.AssetKey(asset))
        return {name: value.value for name, value in event.asset_materialization.metadata.items()}


@pytest.fixture()
def loop(s3_server, demo_dir, tmp_path, monkeypatch):  # noqa: F811
    use_dummy_aws(monkeypatch, tmp_path)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.delenv("TQC_CONFIG", raising=False)
    bucket = s3_server.new_bucket()
    with running_fake_batch(s3_server.client(), models=(MODEL,), min_records=5) as (control, control_url), FakeBedrock() as converse, \
            dg.instance_for_test() as instance:
        config_path = project(tmp_path / "batch", demo_dir, converse.url, s3_server.url, batch_settings(bucket, control_url))
        result = CliRunner().invoke(main, ["run", "--config", str(config_path), "--partition", PARTITION, "--select", SELECT], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        yield Project(config_path, instance), control, converse, s3_server, bucket, tmp_path


def creates(control) -> int:
    return sum(op == "CreateModelInvocationJob" for op, _ in control.calls)


def test_large_deficit_goes_through_batch_and_only_the_rest_online(loop, demo_dir):
    run, control, converse, server, bucket, tmp_path = loop
    assert run.tick() == []  # nothing written yet

    assert run.materialize(SYNTHESIS_REQUESTS).success
    requests = run.stored(SYNTHESIS_REQUESTS)
    round_0 = run.metadata(SYNTHESIS_REQUESTS)["round_0_requests"]
    assert requests.height == round_0 >= 20 and requests.get_column("record_id").str.contains(r"^[0-9a-f]{64}$").all()
    files = sorted(server.keys(bucket, "synthesis-input/v1/model_a/"))
    assert len(files) == requests.get_column("request_file").n_unique() >= 3
    (row,) = estimate(run.config, [("v1", "model_a")]).iter_rows(named=True)  # tqc estimate: round 0 at the batch price
    assert row["batch_requests"] == round_0 and row["cost_with_batch_usd"] < row["cost_usd"]
    printed = CliRunner().invoke(main, ["estimate", "--config", run.config.config_path, "--partition", PARTITION], catch_exceptions=False)
    assert printed.exit_code == 0 and f"with round 0 of {round_0} requests through batch inference" in printed.output
    assert "turn on the synthesis_batch_jobs sensor" in run.failure(SYNTHETIC_SAMPLES)
    requests.head(-1).write_parquet(run.path(SYNTHESIS_REQUESTS))  # requests of other samples (round 0 has changed since)
    assert f"{SYNTHESIS_REQUESTS} of {PARTITION} was made from other samples" in run.failure(SYNTHETIC_SAMPLES)
    requests.write_parquet(run.path(SYNTHESIS_REQUESTS))
    assert converse.log == []  # nothing paid online while round 0 waits for batch

    (submit,) = run.tick()
    assert submit.asset_selection == [dg.AssetKey(SYNTHESIS_JOBS)]
    assert run.materialize(SYNTHESIS_JOBS).success
    jobs = run.stored(SYNTHESIS_JOBS)
    assert (jobs.get_column("status") == "Submitted").sum() == 2 and creates(control) == 2
    assert all(job["modelInvocationType"] == "Converse" for job in control.jobs.values())
    assert jobs.get_column("job_name").str.starts_with("tqcs-v1-model-a-").all()

    # A crash: the run died after submitting, before its job table was stored. The rerun submits nothing again.
    Path(run.path(SYNTHESIS_JOBS)).unlink()
    assert run.materialize(SYNTHESIS_JOBS).success and creates(control) == 2
    in_flight = run.failure(SYNTHETIC_SAMPLES)
    assert "are not done" in in_flight and jobs.get_column("job_name")[0] in in_flight and SENSOR in in_flight
    recorded = run.stored(SYNTHESIS_JOBS)  # jobs recorded for other request files (round 0 changed after they were submitted)
    recorded.with_columns(pl.lit("0" * 64).alias("sha256")).write_parquet(run.path(SYNTHESIS_JOBS))
    assert "were made for other request files" in run.failure(SYNTHETIC_SAMPLES) and converse.log == []
    recorded.write_parquet(run.path(SYNTHESIS_JOBS))

    control.outcomes[sorted(jobs.drop_nulls("job_arn").get_column("job_name"))[0]] = "PartiallyCompleted"  # 3 records missing
    for _ in range(10):  # the sensor's ticks as time goes on: record, submit the pending files, until every job is done
        control.advance()
        wanted = run.tick()
        if wanted and wanted[-1].asset_selection == [dg.AssetKey(SYNTHETIC_SAMPLES)]:
            break
        for request in wanted:
            assert run.materialize(request.asset_selection[0].to_user_string()).success
    record, samples = wanted
    assert record.asset_selection == [dg.AssetKey(SYNTHESIS_JOBS)] and samples.partition_key == PARTITION
    assert creates(control) == len(files) and len(control.jobs) == len(files)
    assert run.materialize(SYNTHESIS_JOBS).success and run.materialize(SYNTHETIC_SAMPLES).success

    report = run.metadata(SYNTHETIC_SAMPLES)["batch_round"]
    online = len(converse.log)
    assert report["round_0_requests"] == round_0 and report["round_0_from_batch"] + report["round_0_online"] == round_0
    assert report["batch_answers_missing"] == control.missing and report["batch_answers_rejected"] > 0
    assert report["round_0_online"] > 0 and report["batch_cost_usd"] == pytest.approx(report["same_tokens_on_demand_usd"] / 2, abs=1e-4)
    made = run.stored(SYNTHETIC_SAMPLES)
    assert made.height > 0

    # The same samples as a run that asks everything online (fresh cache, no batch) ...
    alone = tmp_path / "online"
    shutil.copytree(run.config.storage_root, alone / "lake", ignore=shutil.ignore_patterns("bedrock_cache", SYNTHETIC_SAMPLES))
    with FakeBedrock() as fresh, dg.instance_for_test() as instance:
        online_run = Project(project(alone, demo_dir, fresh.url, server.url, None), instance)
        assert online_run.materialize(SYNTHETIC_SAMPLES).success
        assert online_run.stored(SYNTHETIC_SAMPLES).equals(made)
        # later rounds (groups round 0 left short) are the same in both runs: round 0 online only what batch did not answer
        assert online - report["round_0_online"] == len(fresh.log) - round_0
    # ... and byte for byte those of a run on the same cached answers, which asks nothing.
    again = tmp_path / "cached"
    shutil.copytree(run.config.storage_root, again / "lake", ignore=shutil.ignore_patterns(SYNTHETIC_SAMPLES))
    with FakeBedrock() as silent, dg.instance_for_test() as instance:
        cached_run = Project(project(again, demo_dir, silent.url, server.url, None), instance)
        assert cached_run.materialize(SYNTHETIC_SAMPLES).success
        assert silent.log == [] and Path(cached_run.path(SYNTHETIC_SAMPLES)).read_bytes() == Path(run.path(SYNTHETIC_SAMPLES)).read_bytes()


def test_small_deficit_stays_online(loop):
    """Round 0 below synthesis.batch.min_requests: no request file, no job, every request online."""
    run, control, converse, server, bucket, tmp_path = loop
    path = Path(run.config.config_path)
    raw = yaml.safe_load(path.read_text())
    raw["synthesis"]["batch"]["min_requests"] = 100_000
    raw.setdefault("bedrock", {})["batch_prices"] = {}  # an on-demand price and no batch price: the estimate says no batch cost
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    printed = CliRunner().invoke(main, ["estimate", "--config", str(path), "--partition", PARTITION], catch_exceptions=False)
    assert printed.exit_code == 0 and "through batch inference" not in printed.output and "$" in printed.output, printed.output
    run = Project(path, run.instance)
    assert run.materialize(SYNTHESIS_REQUESTS).success
    assert run.stored(SYNTHESIS_REQUESTS).is_empty() and server.keys(bucket, "synthesis-input/") == []
    assert "goes online" in run.metadata(SYNTHESIS_REQUESTS)["batch"]
    assert run.tick() == [] and creates(control) == 0
    assert run.materialize(SYNTHETIC_SAMPLES).success
    assert len(converse.log) >= run.metadata(SYNTHESIS_REQUESTS)["round_0_requests"] > 0
    assert "goes online" in run.metadata(SYNTHETIC_SAMPLES)["batch_round"]["batch"]
