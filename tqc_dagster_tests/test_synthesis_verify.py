"""Judge-verified synthesis (synthesis.verify_with_judge) through real boto3 against the fake Converse endpoint.

The fake answers a judge prompt (the real jobs' layout) with a judge array in the real format: it
agrees with a sample it generated (its low score moved by half a point inside the bucket, so a kept
sample shows the judge's scores), puts it two buckets away, or answers prose, per translation text
(a hash: a rerun gets the same verdict). Every verdict is checked against what the fake served.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from click.testing import CliRunner

from tqc_dagster.bedrock.client import ConverseClient
from tqc_dagster.cli import main
from tqc_dagster.config import ConfigError, Synthesis, load_config
from tqc_dagster.core.batch_outputs import prompt_fields
from tqc_dagster.core.judge_prompt import JUDGE_PREFILL, JUDGE_SYSTEM_PROMPT
from tqc_dagster.core.synthesis import deficits, rows_outside_their_group
from tqc_dagster.core.synthesis.bedrock import GIVE_UP_AFTER_REQUESTS, BedrockBackend
from tqc_dagster.core.synthesis.verify import OTHER_GROUP, REQUEST_FAILED, JudgeVerifier, read_judgments
from tqc_dagster.estimate import estimate_partition
from tqc_dagster.resources.storage import asset_path
from tqc_dagster.schemas import Samples
from tqc_dagster_tests.bedrock_helpers import RecordingFakeBedrock, client_kwargs, error_answer, use_dummy_aws
from tqc_dagster_tests.conftest import write_config
from tqc_dagster_tests.fake_bedrock import JUDGED_TRANSLATION, Faults, prompt_text
from tqc_dagster_tests.test_synthesis_bedrock import BUDGET, MAX_TOKENS, MIN_SAMPLES, MODEL_ID, SAMPLES_PER_REQUEST, THRESHOLDS, is_test, judged_samples

JUDGE_MODEL = "anthropic.claude-judge-test:0"
UNREADABLE = "judge_unparseable_judge_output"


@pytest.fixture(autouse=True)
def _aws(monkeypatch, tmp_path):
    use_dummy_aws(monkeypatch, tmp_path)


@pytest.fixture(scope="module")
def groups() -> tuple[pl.DataFrame, pl.DataFrame]:
    """The judged samples of test_synthesis_bedrock and their 36 groups to top up."""
    judged = judged_samples()
    return judged, deficits(judged, MIN_SAMPLES)


def run(fake, cache: Path, groups, verify: bool = True, **judge_overrides):
    """One synthesis run; the generator and the judge are two clients of the fake sharing one cache folder."""
    judged, wanted = groups
    generator = ConverseClient(**client_kwargs(fake, cache, model_id=MODEL_ID))
    verifier = JudgeVerifier(ConverseClient(**client_kwargs(fake, cache, model_id=JUDGE_MODEL, **judge_overrides)), THRESHOLDS, MAX_TOKENS) if verify else None
    output = BedrockBackend(generator, THRESHOLDS, SAMPLES_PER_REQUEST, BUDGET, MAX_TOKENS, is_test, verifier).synthesize(judged, wanted, seed=0)
    return output, verifier


def judge_kinds(fake) -> Counter:
    return Counter(s.kind for s in fake.served if s.kind.startswith("judge_"))


def rejected_totals(report: pl.DataFrame) -> Counter:
    totals = Counter()
    for counts in report["rejected"]:
        totals.update(json.loads(counts))
    return totals


@pytest.fixture(scope="module")
def mixed_run(groups, tmp_path_factory):
    """A run whose judge disagrees with 25 % of the translations and answers prose for 10 %."""
    folder = tmp_path_factory.mktemp("mixed_run")
    with pytest.MonkeyPatch.context() as monkeypatch:
        use_dummy_aws(monkeypatch, folder)
        with RecordingFakeBedrock(Faults(judge_disagree=0.25, judge_unreadable=0.1), seed=3) as fake:
            output, verifier = run(fake, folder / "cache", groups)
    return {"output": output, "verifier": verifier, "fake": fake, "cache": folder / "cache", "faults": fake.faults}


# --- kept when the judge agrees -------------------------------------------------------------------------------


def test_kept_samples_carry_the_judges_thought_and_scores(tmp_path, groups):
    with RecordingFakeBedrock() as fake:
        output, verifier = run(fake, tmp_path / "cache", groups)
    made, wanted = output.samples, groups[1]
    assert output.report["unfilled"].to_list() == [0] * wanted.height
    assert made.height == wanted["needed"].sum()
    Samples.validate(made)
    assert rows_outside_their_group(made, wanted, THRESHOLDS).height == 0
    kinds = judge_kinds(fake)
    assert set(kinds) == {"judge_agree"} and verifier.summary() == {"judge_model": JUDGE_MODEL, "judged": kinds["judge_agree"], "kept": made.height, "rejected": {}}
    assert kinds["judge_agree"] == made.height  # one judge request per sample; none made past the need
    for row in made.iter_rows(named=True):
        generated = fake.made[row["translation"]]  # the scores the generator wrote
        low = min(range(7), key=lambda c: (generated[c], c))
        assert row["scores"][low] == generated[low] + (0.5 if generated[low] % 1 == 0 else -0.5)  # the judge's
        assert row["thought"].endswith("the judge sees a concrete problem.")
    assert not any(reason.startswith("judge_") for reason in rejected_totals(output.report))


def test_judge_requests_are_the_real_judge_prompt_to_the_judge_model(mixed_run):
    served = [s for s in mixed_run["fake"].served if s.kind.startswith("judge_")]
    assert served and {s.system for s in served} == {JUDGE_SYSTEM_PROMPT}
    generated = {row["translation"] for row in mixed_run["output"].samples.iter_rows(named=True)}
    for s in served:
        assert s.prompt.endswith(JUDGE_PREFILL)  # the assistant prefill is the last message
        lang, source, first, second = prompt_fields(s.prompt.removesuffix(JUDGE_PREFILL), [1, 2])
        assert lang == "zh-cn" and source and first == JUDGED_TRANSLATION.search(s.prompt).group(1) and second is None
    kept = [s for s in served if s.kind == "judge_agree"]
    assert {JUDGED_TRANSLATION.search(s.prompt).group(1) for s in kept} == generated


# --- rejected, with the reason ---------------------------------------------------------------------------------


def test_other_group_and_unreadable_answers_are_rejected_and_counted(mixed_run, groups):
    output, verifier, fake, wanted = mixed_run["output"], mixed_run["verifier"], mixed_run["fake"], groups[1]
    kinds = judge_kinds(fake)
    assert kinds["judge_disagree"] > 0 and kinds["judge_unreadable"] > 0
    summary = verifier.summary()
    assert summary["judged"] == sum(kinds.values())
    assert summary["kept"] == kinds["judge_agree"] == output.samples.height
    assert summary["rejected"] == {OTHER_GROUP: kinds["judge_disagree"], UNREADABLE: kinds["judge_unreadable"]}
    totals = rejected_totals(output.report)
    assert totals[OTHER_GROUP] == kinds["judge_disagree"] and totals[UNREADABLE] == kinds["judge_unreadable"]
    # rejected samples are asked for again, within the budget: a group left short has spent it, and says so
    report = output.report
    assert (report["made"] + report["unfilled"]).to_list() == wanted["needed"].to_list()
    assert (report["unfilled"] == 0).sum() >= 0.9 * wanted.height
    short = report.filter(pl.col("unfilled") > 0)
    assert (short["requests"] == BUDGET).all() and short["why"].str.starts_with(f"request budget spent ({BUDGET} requests").all()
    assert rows_outside_their_group(output.samples, wanted, THRESHOLDS).height == 0


def test_a_group_the_judge_always_moves_is_given_up_within_the_bound(tmp_path, groups):
    with RecordingFakeBedrock(Faults(judge_disagree=1.0)) as fake:
        output, verifier = run(fake, tmp_path / "cache", groups)
    report = output.report
    assert output.samples.height == 0 and report["made"].sum() == 0
    assert (report["requests"] == GIVE_UP_AFTER_REQUESTS).all()  # not the whole budget of BUDGET requests
    assert report["why"].str.starts_with(f"gave up: no usable sample in {GIVE_UP_AFTER_REQUESTS} requests").all()
    assert report["why"].str.contains(OTHER_GROUP).all()
    assert verifier.summary()["rejected"] == {OTHER_GROUP: verifier.summary()["judged"]}


def test_a_judge_request_that_keeps_failing_rejects_its_sample(tmp_path, groups):
    def unavailable(number: int, request: dict):
        return error_answer(503, "ServiceUnavailableException", "down") if JUDGED_TRANSLATION.search(prompt_text(request)) else None

    with RecordingFakeBedrock(script=unavailable) as fake:
        output, verifier = run(fake, tmp_path / "cache", groups, max_attempts=2)
    summary = verifier.summary()
    assert summary["kept"] == 0 and summary["rejected"] == {REQUEST_FAILED: summary["judged"]} and summary["judged"] > 0
    assert 2 * summary["judged"] == sum(s.kind == "scripted" for s in fake.served)  # each judge request tried max_attempts times
    assert rejected_totals(output.report)[REQUEST_FAILED] == summary["judged"]
    assert output.samples.height == 0


def test_a_truncated_judge_answer_is_rejected_as_ingest_would_quarantine_it():
    request = {"messages": [{"role": "user", "content": [{"text": '## Source Text\n<source>\n<content>Toy Car</content>\n</source>\n\n'
                                                           '## Translations\n<translations target_lang="zh-cn">\n<translation id="1">\n'
                                                           '<translator>machine</translator>\n<content>玩具车</content>\n</translation>\n'}]},
                            {"role": "assistant", "content": [{"text": JUDGE_PREFILL}]}]}

    def answer(text: str, stop: str = "stop_sequence") -> dict:
        return {"output": {"message": {"role": "assistant", "content": [{"text": text}]}}, "stopReason": stop}

    scored = '\n[{"id": 1, "thought": "Fine.", "scores": [5, 5, 5, 5, 2.5, 5, 5]}]\n'
    readings = read_judgments(
        [request] * 5,
        [answer(scored), answer(scored, "max_tokens"), answer('[{"id": 2, "thought": "x", "scores": [5, 5, 5, 5, 5, 5, 5]}]'),
         answer('[{"id": 1, "thought": "", "scores": [5, 5, 5, 5, 5, 5, 5]}]'), answer('[{"id": 1, "thought": "x", "scores": "5535555"}]')],
        THRESHOLDS,
    )
    assert readings == [
        {"thought": "Fine.", "scores": [5.0, 5.0, 5.0, 5.0, 2.5, 5.0, 5.0], "criterion": 4, "score_bucket": 2},
        "judge_truncated_output", "judge_missing_judge_entry", "judge_empty_thought", "judge_scores_not_a_list",
    ]


# --- cached: a rerun pays nothing --------------------------------------------------------------------------------


def test_a_rerun_pays_nothing_and_makes_the_same_samples(tmp_path, groups):
    with RecordingFakeBedrock(Faults(judge_disagree=0.25)) as fake:
        first, _ = run(fake, tmp_path / "cache", groups)
    assert judge_kinds(fake)["judge_disagree"] > 0
    with RecordingFakeBedrock(Faults(judge_disagree=0.25)) as fake:  # a new fake: it remembers no sample
        second, verifier = run(fake, tmp_path / "cache", groups)
    assert fake.served == [] and verifier.client.usage.requests == 0
    assert verifier.client.usage.cache_hits == verifier.summary()["judged"] > 0
    assert second.samples.equals(first.samples) and second.report.equals(first.report)


def test_an_unreadable_judge_answer_is_not_cached(mixed_run, groups):
    unreadable = {s.key for s in mixed_run["fake"].served if s.kind == "judge_unreadable"}
    with RecordingFakeBedrock(mixed_run["faults"], seed=3) as fake:
        output, _ = run(fake, mixed_run["cache"], groups)
    assert {s.key for s in fake.served} == unreadable and len(fake.served) == len(unreadable)  # asked again, nothing else
    assert output.samples.equals(mixed_run["output"].samples)


# --- off by default ------------------------------------------------------------------------------------------------


def test_off_by_default_no_judge_request(tmp_path, groups):
    assert Synthesis().verify_with_judge is False
    with RecordingFakeBedrock() as fake:
        output, _ = run(fake, tmp_path / "cache", groups, verify=False)
    assert output.samples.height == groups[1]["needed"].sum()
    assert not judge_kinds(fake) and not any(JUDGED_TRANSLATION.search(s.prompt) for s in fake.served)


def test_the_judge_model_is_configured_once(demo_dir, tmp_path):
    def config(folder: str, **synthesis):
        return load_config(write_config(tmp_path / folder, demo_dir, synthesis=synthesis))

    assert config("off", backend="bedrock").verifying_judge("v1") is None
    verifying = config("on", backend="bedrock", verify_with_judge=True)
    assert verifying.verifying_judge("v1") == "anthropic.claude-3-5-sonnet-20241022-v2:0"  # each judge version's own judge_model
    assert verifying.verifying_judge("v2") == "us.anthropic.claude-3-7-sonnet-20250219-v1:0"
    assert config("named", backend="bedrock", verify_with_judge=True, judge_model=JUDGE_MODEL).verifying_judge("v2") == JUDGE_MODEL
    with pytest.raises(ConfigError, match="synthesis.verify_with_judge: needs backend: bedrock"):
        config("rules", verify_with_judge=True)


# --- in the graph, and in the estimate ----------------------------------------------------------------------------


def test_the_asset_reports_verdicts_and_the_estimate_counts_judge_requests(demo_dir, tmp_path, isolated_env):
    synthesis = {"backend": "bedrock", "min_samples": 5, "samples_per_request": 5}
    with RecordingFakeBedrock(Faults(judge_disagree=0.2)) as fake:
        bedrock = {"endpoint_url": fake.url, "requests_per_minute": 6000, "tokens_per_minute": 50_000_000, "max_workers": 8}
        config_path = write_config(tmp_path / "project", demo_dir, synthesis={**synthesis, "verify_with_judge": True}, bedrock=bedrock)
        result = CliRunner().invoke(main, ["run", "--config", str(config_path), "--partition", "v2|model_a",
                                           "--select", "judge_records,raw_judgments,processed_samples,quarantined_judgments,synthetic_samples"])
        assert result.exit_code == 0, result.output
    config = load_config(config_path)
    made = pl.read_parquet(asset_path(config.storage_root, "synthetic_samples", "v2", "model_a"))
    with dg.DagsterInstance.get() as instance:
        metadata = instance.get_latest_materialization_event(dg.AssetKey("synthetic_samples")).asset_materialization.metadata
    verification, kinds = metadata["judge_verification"].value, judge_kinds(fake)
    assert verification["judge_model"] == "us.anthropic.claude-3-7-sonnet-20250219-v1:0"  # v2's judge
    assert verification["judged"] == sum(kinds.values()) and verification["kept"] == made.height == kinds["judge_agree"] > 0
    assert verification["rejected"] == {OTHER_GROUP: kinds["judge_disagree"]}
    assert verification["bedrock"]["answered"] == sum(kinds.values()) and verification["bedrock"]["estimated_cost_usd"] > 0
    assert metadata["bedrock"].value["answered"] == sum(not s.kind.startswith("judge_") for s in fake.served)

    samples = pl.read_parquet(asset_path(config.storage_root, "processed_samples", "v2", "model_a"))
    # at the default quota (150 requests/min), so that the hours show the judge requests
    on, off = (estimate_partition(samples, load_config(write_config(tmp_path / name, demo_dir, synthesis=settings)), "v2")
               for name, settings in (("on", {**synthesis, "verify_with_judge": True}), ("off", synthesis)))
    assert "verify_requests" not in off and on["verify_requests"] == on["samples_to_make"] > 0
    assert on["requests"] == off["requests"] and on["input_tokens"] > off["input_tokens"] and on["output_tokens"] > off["output_tokens"]
    assert on["cost_usd"] > off["cost_usd"] and on["hours_at_quota"] > off["hours_at_quota"]
    result = CliRunner().invoke(main, ["estimate", "--config", str(config_path), "--partition", "v2|model_a"])
    assert result.exit_code == 0 and "judge requests verifying the samples" in result.output and "verify_requests" in result.output
