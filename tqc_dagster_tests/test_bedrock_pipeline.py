"""The bedrock backend inside the real graph: `tqc run` against the fake Converse endpoint."""

import dagster as dg
import polars as pl
from click.testing import CliRunner

from tqc_dagster.cli import main
from tqc_dagster.config import load_config
from tqc_dagster.definitions import build_definitions
from tqc_dagster.resources.storage import asset_path
from tqc_dagster_tests.conftest import write_config
from tqc_dagster_tests.fake_bedrock import FakeBedrock, Faults

SELECTION = "judge_records,raw_judgments,processed_samples,quarantined_judgments,synthetic_samples"


def test_run_synthesizes_through_bedrock_and_reports_usage(demo_dir, tmp_path, isolated_env, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "fake-key-id")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "fake-secret-never-logged")
    with FakeBedrock(Faults(throttle=0.1, latency=(0.0, 0.01))) as fake:
        config_path = write_config(
            tmp_path / "project",
            demo_dir,
            synthesis={"backend": "bedrock", "min_samples": 5, "samples_per_request": 5},
            bedrock={"endpoint_url": fake.url, "requests_per_minute": 6000, "tokens_per_minute": 50_000_000, "max_workers": 8},
        )
        result = CliRunner().invoke(main, ["run", "--config", str(config_path), "--partition", "v1|model_a", "--select", SELECTION])
        assert result.exit_code == 0, result.output
        answered = len(fake.log)
    config = load_config(config_path)
    made = pl.read_parquet(asset_path(config.storage_root, "synthetic_samples", "v1", "model_a"))
    assert made.height > 0 and made.get_column("synthetic_backend").unique().to_list() == ["bedrock"]
    assert answered >= made.height / 5

    with dg.DagsterInstance.get() as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey("synthetic_samples"))
        usage = event.asset_materialization.metadata["bedrock"].value
        assert "judge_verification" not in event.asset_materialization.metadata  # verification is off by default
    assert usage["answered"] > 0 and usage["requests"] == usage["answered"] + usage["throttles"]
    assert "estimated_cost_usd" in usage and "fake-secret" not in str(usage)

    spec = build_definitions(config).resolve_assets_def("synthetic_samples")
    assert spec.op.pool == "bedrock"


def test_estimate_prints_requests_hours_and_cost(demo_dir, tmp_path, isolated_env):
    config_path = str(write_config(tmp_path / "project", demo_dir))
    runner = CliRunner()
    assert runner.invoke(main, ["estimate", "--config", config_path]).exit_code == 1  # nothing ingested yet
    result = runner.invoke(main, ["run", "--config", config_path, "--partition", "v2|model_b", "--select", "judge_records,raw_judgments,processed_samples,quarantined_judgments"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["estimate", "--config", config_path, "--partition", "v2|model_b"])
    assert result.exit_code == 0, result.output
    for column in ("groups", "samples_to_make", "requests", "hours_at_quota", "cost_usd"):
        assert column in result.output
    assert "total:" in result.output and "$" in result.output
