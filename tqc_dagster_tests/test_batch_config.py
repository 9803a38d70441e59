"""The config of judged versions (judge_from, batch, the judge prompt) and of bulk synthesis (synthesis.batch): any value
loads or names its key."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tqc_dagster.config import JudgeBatch, JudgePrompt, SynthesisBatch, load_config
from tqc_dagster.config_batch import BatchJobs
from tqc_dagster_tests.test_config import with_value
from tqc_dagster_tests.test_config_properties import VALUES, loads_or_names, write

BASE = {
    "storage_root": "lake",
    "judge_versions": {
        "v1": {"judge_model": "m1", "input": "raw/v1/*.jsonl.out"},
        "v3": {
            "judge_model": "us.anthropic.claude-3-7-sonnet-20250219-v1:0",
            "judge_from": "v1",
            "batch": {"role_arn": "arn:aws:iam::123456789012:role/tqc-batch", "input_uri": "s3://b/batch-input/v3/", "output_uri": "s3://b/out/v3/"},
        },
    },
    "models": {"model_a": {"translation_id": 1, "name": "a"}, "model_b": {"translation_id": 2, "name": "b"}},
    "agreement": {"judges": ["v1", "v3"]},
}
BATCH_KEYS = sorted(set(JudgeBatch.model_fields) - {"prompt"}) + [f"prompt.{name}" for name in JudgePrompt.model_fields]
KEYS = ["judge_versions.v3.judge_from", "judge_versions.v3.input", "agreement.judges"] + [f"judge_versions.v3.batch.{key}" for key in BATCH_KEYS]
SYNTHESIS = {
    **{key: value for key, value in BASE.items() if key != "agreement"},
    "judge_versions": {"v1": BASE["judge_versions"]["v1"]},
    "synthesis": {"backend": "bedrock", "batch": {"role_arn": "arn:aws:iam::123456789012:role/tqc-batch", "input_uri": "synthesis-in", "output_uri": "s3://b/synthesis-out/"}},
}
SYNTHESIS_KEYS = [f"synthesis.batch.{key}" for key in sorted(SynthesisBatch.model_fields)]


def base_for(key: str) -> dict:
    """The config a key is changed in: bulk synthesis keys in SYNTHESIS, the others in BASE."""
    return SYNTHESIS if key.startswith("synthesis.") else BASE


SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def test_a_judged_version_reads_its_outputs_from_the_output_uri(tmp_path):
    config = load_config(write(tmp_path, BASE))
    v3 = config.judge_versions["v3"]
    assert v3.input == "s3://b/out/v3/*/*.jsonl.out"
    assert v3.batch.prompt == JudgePrompt() and v3.batch.max_concurrent_jobs == 10 and v3.batch.records_per_file == 50_000
    local = load_config(write(tmp_path, with_value(BASE, "judge_versions.v3.batch.output_uri", "out/v3")))
    assert local.judge_versions["v3"].input == str(Path(tmp_path, "out", "v3", "*", "*.jsonl.out"))


@pytest.mark.parametrize(
    ("key", "value", "named"),
    [
        ("judge_versions.v3.judge_from", "v9", "judge_versions.v3.judge_from: 'v9' must be another key"),
        ("judge_versions.v3.judge_from", "v3", "judge_versions.v3.judge_from: 'v3' must be another key"),
        ("judge_versions.v3.input", "raw/*.jsonl.out", "judge_versions.v3.input: leave it out with judge_from"),
        ("judge_versions.v3.batch", None, "judge_versions.v3.batch: missing key"),
        ("judge_versions.v1.batch", BASE["judge_versions"]["v3"]["batch"], "judge_versions.v1.batch: only with judge_from"),
        ("judge_versions.v3.batch.role_arn", "my-role", "judge_versions.v3.batch.role_arn"),
        ("judge_versions.v3.batch.prompt.user_template", "{source} {title}", "judge_versions.v3.batch.prompt.user_template: unknown field {title}"),
        # a rule across two keys is named at both, with the full key (hypothesis found 50,001 named only at the section)
        ("judge_versions.v3.batch.min_records_per_job", 50_001, "judge_versions.v3.batch.min_records_per_job: min_records_per_job (50001) must not exceed records_per_file (50000)"),
        ("judge_versions.v3.batch.records_per_file", 99, "judge_versions.v3.batch.records_per_file: min_records_per_job (100) must not exceed records_per_file (99)"),
        ("judge_versions.v3.batch.timeout_hours", 12, "judge_versions.v3.batch.timeout_hours"),
        ("agreement.judges", ["v1", "v1"], "agreement.judges: each judge version once"),
        ("agreement.judges", ["v1"], "agreement.judges"),
        ("synthesis.backend", "rules", "synthesis.batch: needs backend: bedrock"),
        ("synthesis.batch.min_requests", 50, "synthesis.batch.min_requests: min_requests (50) must be at least min_records_per_job (100)"),
        ("synthesis.batch.min_requests", 50, "synthesis.batch.min_records_per_job: min_requests (50) must be at least min_records_per_job (100)"),
        ("synthesis.batch.min_records_per_job", 60_000, "synthesis.batch.records_per_file: min_records_per_job (60000) must not exceed records_per_file"),
        ("synthesis.batch.prompt", {}, "synthesis.batch.prompt: unknown key"),
    ],
)
def test_bad_values_are_named(tmp_path, key, value, named):
    assert loads_or_names(write(tmp_path, with_value(base_for(key), key, value)), named) is None


@SETTINGS
@given(key=st.sampled_from(KEYS + SYNTHESIS_KEYS), value=VALUES)
def test_any_value_at_any_batch_key_loads_or_names_the_key(tmp_path, key, value):
    loads_or_names(write(tmp_path, with_value(base_for(key), key, value)), key)


def test_bulk_synthesis_shares_the_job_settings_and_resolves_its_folders(tmp_path):
    batch = load_config(write(tmp_path, SYNTHESIS)).synthesis.batch
    assert set(BatchJobs.model_fields) <= set(SynthesisBatch.model_fields) and set(BatchJobs.model_fields) <= set(JudgeBatch.model_fields)
    assert batch.input_uri == str(tmp_path / "synthesis-in") and batch.output_uri == "s3://b/synthesis-out/"
    assert batch.min_requests == batch.min_records_per_job == 100 and batch.max_concurrent_jobs == 10
    raised = load_config(write(tmp_path, with_value(SYNTHESIS, "synthesis.batch.min_records_per_job", 500))).synthesis.batch
    assert raised.min_requests == raised.min_records_per_job == 500  # min_requests follows the job minimum unless set
