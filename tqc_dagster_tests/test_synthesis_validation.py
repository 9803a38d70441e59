"""Issue 15, validation: nothing malformed from the LLM gets in, only usable answers are cached, and a group the
model cannot make stops costing money early. Real boto3 against the fake Converse endpoint."""

from __future__ import annotations

import json
import math
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings, strategies as st

from tqc_dagster.core.synthesis import GROUP_KEYS, deficits
from tqc_dagster.core.synthesis.bedrock import GIVE_UP_AFTER_REQUESTS, sample_problem, usable_answer
from tqc_dagster_tests.bedrock_helpers import RecordingFakeBedrock, use_dummy_aws
from tqc_dagster_tests.fake_bedrock import REQUEST_SPEC, Faults
from tqc_dagster_tests.test_synthesis_bedrock import BUDGET, MIN_SAMPLES, backend_for, judged_samples

KEY = ("Electronics", 2, 3)  # criterion 2, scores in [3, 4)
GOOD = {"source": "Anker Power Bank 10000mAh", "translation": "安克 充电宝", "target_lang": "zh-cn",
        "thought": "Criterion 2: the capacity unit is dropped.", "scores": [5, 5, 3.5, 5, 5, 5, 5]}


@pytest.fixture(autouse=True)
def dummy_aws(monkeypatch, tmp_path):
    return use_dummy_aws(monkeypatch, tmp_path)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"scores": "5535555"}, "scores_not_a_list"),  # a digit string is not 7 scores
        ({"scores": {"a": 5}}, "scores_not_a_list"),
        ({"scores": ["5", "5", "3.5", "5", "5", "5", "5"]}, "score_not_numeric"),
        ({"scores": [True, 5, 3.5, 5, 5, 5, 5]}, "score_not_numeric"),
        ({"scores": [5, 5, math.nan, 5, 5, 5, 5]}, "score_out_of_range"),
        ({"scores": [5, 5, 3.5, 5, 5, 5]}, "wrong_score_count"),
        ({"target_lang": "xx-INVALID</request>"}, "wrong_target_lang"),
        ({"target_lang": "de-de"}, "wrong_target_lang"),
        ({"translation": "安克\x00充电宝"}, "corrupt_text"),
        ({"thought": "broken \ufffd escape"}, "corrupt_text"),
        ({"source": 5}, "missing_fields"),
        ({"scores": [5, 5, 2.5, 5, 5, 5, 5]}, "wrong_score_bucket"),
        ({"scores": [5, 3.5, 5, 5, 5, 5, 5]}, "wrong_criterion"),
        ({}, None),
    ],
)
def test_every_field_is_checked_for_type_and_value(change, reason):
    assert sample_problem({**GOOD, **change}, KEY, "zh-cn") == reason


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8), lambda inner: st.lists(inner, max_size=8) | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=20)


@settings(max_examples=500, deadline=None)
@given(item=st.one_of(JSON, st.fixed_dictionaries({name: st.one_of(JSON, st.just(value)) for name, value in GOOD.items()})))
def test_a_sample_that_passes_is_well_formed_and_in_its_group(item):
    """Whatever the model returns, validation never raises, and what it lets through is exactly a sample of the group."""
    if sample_problem(item, KEY, "zh-cn") is not None:
        return
    scores = item["scores"]
    assert all(isinstance(item[name], str) and item[name].strip() for name in ("source", "translation", "thought"))
    assert item["target_lang"] == "zh-cn"
    assert isinstance(scores, list) and len(scores) == 7 and all(type(score) in (int, float) for score in scores)
    assert min(scores) == scores[KEY[1]] and math.floor(min(scores)) == KEY[2] and max(scores) <= 5


def answer(text: str) -> dict:
    return {"output": {"message": {"role": "assistant", "content": [{"text": text}]}}}


def test_only_an_answer_with_a_usable_sample_is_worth_caching():
    accept = usable_answer(KEY, "zh-cn")
    assert accept(answer(json.dumps([{**GOOD, "scores": "5535555"}, GOOD])))
    assert not accept(answer(json.dumps([{**GOOD, "target_lang": "de-de"}])))
    assert not accept(answer('I am sorry: [{"source": "broken'))
    assert not accept({})
    assert not accept({"output": {"message": {"content": "not blocks"}}})
    assert not accept(answer("[" * 100_000 + "]" * 100_000))  # nested past the decoder's depth: unusable, not a crash


def test_a_malformed_body_is_not_cached_and_is_asked_again(tmp_path):
    judged = judged_samples()
    wanted = deficits(judged, MIN_SAMPLES)

    def empty_body(number, request):  # a 200 whose body has no output at all, for the first requests
        return (200, {}, {"stopReason": "end_turn", "usage": {"inputTokens": 1, "outputTokens": 0, "totalTokens": 1}}) if number < 5 else None

    with RecordingFakeBedrock(Faults(), script=empty_body) as fake:
        backend = backend_for(fake, tmp_path / "cache")
        output = backend.synthesize(judged, wanted, seed=0)
    empty_keys = {s.key for s in fake.served[:5]}
    assert backend.client.usage.not_cached == 5
    assert not empty_keys & {path.stem for path in (tmp_path / "cache").rglob("*.json")}
    assert output.report["unfilled"].to_list() == [0] * wanted.height
    with RecordingFakeBedrock(Faults()) as rerun:
        backend_for(rerun, tmp_path / "cache").synthesize(judged, wanted, seed=0)
    assert {s.key for s in rerun.served} == empty_keys  # only the unusable answers are paid for again


def test_a_group_the_model_cannot_make_stops_early(tmp_path):
    """Every answer in the wrong bucket: each group gives up after GIVE_UP_AFTER_REQUESTS requests, not its budget."""
    judged = judged_samples()
    wanted = deficits(judged, MIN_SAMPLES)
    with RecordingFakeBedrock(Faults(wrong_bucket=1.0)) as fake:
        output = backend_for(fake, tmp_path / "cache").synthesize(judged, wanted, seed=0)
    report = output.report
    assert output.samples.is_empty()
    assert report["requests"].to_list() == [GIVE_UP_AFTER_REQUESTS] * wanted.height < [BUDGET] * wanted.height
    assert len(fake.served) == GIVE_UP_AFTER_REQUESTS * wanted.height
    assert report["why"].str.starts_with(f"gave up: no usable sample in {GIVE_UP_AFTER_REQUESTS} requests (wrong_score_bucket").all()
    assert report.select(GROUP_KEYS).rows() == wanted.select(GROUP_KEYS).rows()


def test_the_requested_language_is_the_groups_and_is_required(tmp_path):
    """A group judged in German asks for German, and a sample in another language is rejected."""
    judged = judged_samples().with_columns(
        pl.when(pl.col("product_category") == "Toys_and_Games").then(pl.lit("de-de")).otherwise("target_lang").alias("target_lang")
    )
    wanted = deficits(judged, MIN_SAMPLES)
    with RecordingFakeBedrock(Faults()) as fake:
        output = backend_for(fake, tmp_path / "cache").synthesize(judged, wanted, seed=0)
    asked = {json.loads(REQUEST_SPEC.search(s.prompt).group(1))["target_lang"] for s in fake.served if "Toys_and_Games" in s.prompt}
    assert asked == {"de-de"}
    made = output.samples
    assert made.filter(pl.col("product_category") == "Toys_and_Games").get_column("target_lang").unique().to_list() == ["de-de"]
    assert made.filter(pl.col("product_category") != "Toys_and_Games").get_column("target_lang").unique().to_list() == ["zh-cn"]


# --- a shortfall is said, and stops what follows when the config says so -------------------------------------


SYNTHESIS_ON = "synthetic_samples,trainset,testset,balanced_trainset"


def shortfall_project(full_run, demo_dir, tmp_path, monkeypatch, on_shortfall: str):
    """A copy of the session's full run, its config asking for min_samples far above what the rules backend can
    make from the demo's flawless bases (the instance of the copy in DAGSTER_HOME)."""
    from tqc_dagster_tests.conftest import write_config

    folder = full_run.copy(tmp_path / on_shortfall).parent
    monkeypatch.setenv("DAGSTER_HOME", str(folder / "dagster_home"))
    return write_config(folder, demo_dir, synthesis={"min_samples": 5000, "on_shortfall": on_shortfall})


def test_a_shortfall_warns_by_default_and_the_run_goes_on(full_run, demo_dir, tmp_path, monkeypatch):
    from tqc_dagster.config import load_config
    from tqc_dagster.resources.storage import asset_path
    from tqc_dagster_tests.test_guard_rails import tqc

    config_path = shortfall_project(full_run, demo_dir, tmp_path, monkeypatch, "warn")
    config = load_config(config_path)
    before = {model: Path(asset_path(config.storage_root, "balanced_trainset", "v1", model)).stat().st_mtime_ns for model in ("model_a", "model_b")}
    result = tqc("run", "--config", str(config_path), "--judge-version", "v1", "--select", SYNTHESIS_ON)
    assert result.exit_code == 0, result.output
    synthesis_lines = [line for line in result.output.splitlines() if line.strip().startswith("synthesis v1|")]
    assert len(synthesis_lines) == 2 and all("warned" in line for line in synthesis_lines), result.output
    for model in ("model_a", "model_b"):
        assert f"warning: synthetic_samples v1|{model} failed its check groups_filled: " in result.output
    assert "rare groups stay below min_samples (5000)" in result.output
    for model, written in before.items():  # what follows ran again
        assert Path(asset_path(config.storage_root, "balanced_trainset", "v1", model)).stat().st_mtime_ns != written


def test_a_shortfall_fails_and_stops_what_follows_with_on_shortfall_fail(full_run, demo_dir, tmp_path, monkeypatch):
    from tqc_dagster.config import load_config
    from tqc_dagster.resources.storage import asset_path
    from tqc_dagster_tests.test_guard_rails import tqc

    config_path = shortfall_project(full_run, demo_dir, tmp_path, monkeypatch, "fail")
    config = load_config(config_path)
    trainsets = {model: Path(asset_path(config.storage_root, "trainset", "v1", model)).read_bytes() for model in ("model_a", "model_b")}
    result = tqc("run", "--config", str(config_path), "--judge-version", "v1", "--select", SYNTHESIS_ON)
    assert result.exit_code == 1, result.output
    assert "FAILED (failed checks: synthetic_samples:groups_filled)" in result.output
    for model, stored in trainsets.items():  # the splits of the earlier run stay; none is made from the short synthesis
        assert f"splits v1|{model}" in result.output and "skipped" in next(line for line in result.output.splitlines() if f"splits v1|{model}" in line)
        assert Path(asset_path(config.storage_root, "trainset", "v1", model)).read_bytes() == stored
    assert "Traceback" not in result.output
