"""The formats added for issue 14: Bedrock keywords in any case and job files of at most 20,000 lines, verl, QE
regression, the reference reward (property-tested), and the card's provenance without machine paths."""

from __future__ import annotations

import json
import math

import polars as pl
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from tqc_dagster.core import export, export_qe, export_rl
from tqc_dagster.core.export_folder import verify_export, write_export
from tqc_dagster.core.provenance import REDACTED, card_config, card_path, input_fingerprint
from tqc_dagster.core.rubric import COMPLEX, SIMPLE
from tqc_dagster.rewards import compute_score, parse_ratings, rating_reward, ratings_reward
from tqc_dagster.stores import FileState
from tqc_dagster_tests.samples import sample, samples_frame
from tqc_dagster_tests.test_export import config, default_prompts, frames, provenance, tree  # noqa: F401 (fixtures)


@pytest.mark.parametrize("keyword", ["user:", "ASSISTANT:", "sYsTeM:", "bot:", "<UNK>", "<unk>", "[eos]", "<Image>", "<VIDEO>"])
def test_reserved_keywords_are_left_out_in_any_letter_case(keyword):
    rows = [sample("meta_Home_and_Kitchen_1_0"), sample("meta_Home_and_Kitchen_2_0", model="model_b", thought=f"Fine {keyword} fine")]
    prompts = default_prompts(samples_frame(rows), COMPLEX)
    lines, left_out = export.bedrock(prompts)
    assert (lines.height, left_out) == (1, 1)
    tampered = pl.concat([lines, lines.with_columns(pl.lit(f"x {keyword}").alias("schemaVersion"))]).with_columns(
        pl.col("system").list.eval(pl.struct(pl.lit(f"Judge {keyword}").alias("text"))))
    assert export.bedrock_problems(tampered) == 2


# --- Bedrock job files of at most 20,000 lines --------------------------------------------------------------


@pytest.mark.parametrize("records, max_records, sizes", [(0, 20, []), (1, 20, [1]), (20, 20, [20]), (21, 20, [10, 11]), (45, 20, [15, 15, 15]), (40_001, 20_000, [13_333, 13_334, 13_334])])
def test_shard_sizes_are_the_fewest_files_within_the_limit(records, max_records, sizes):
    assert export.shard_sizes(records, max_records) == sizes


def many_samples(n: int) -> pl.DataFrame:
    """n simple-model samples with distinct ids and sources (one real sample repeated, polars only)."""
    base = samples_frame([sample("meta_Home_and_Kitchen_1_0", "Lodge Cast Iron Skillet", scores=[5.0, 2.0, 5.0, 5.0, 5.0, 5.0, 5.0])])
    index = pl.int_range(n, eager=True).cast(pl.String)
    many = base.select(pl.all().gather(pl.zeros(n, dtype=pl.Int64, eager=True)))
    return many.with_columns(sample_id=pl.lit("s") + index.str.zfill(6), source=pl.lit("Lodge Cast Iron Skillet ") + index).sort("sample_id")


def test_bedrock_shards_are_a_seeded_partition_in_sample_id_order():
    prompts = default_prompts(many_samples(45), SIMPLE)
    shards, left_out = export.bedrock_shards(prompts, seed=0, max_records=20)
    lines, _ = export.bedrock(prompts)
    assert left_out == 0 and [shard.height for shard in shards] == [15, 15, 15]
    users = [shard["messages"].list.first().struct.field("content").list.first().struct.field("text").to_list() for shard in shards]
    order = lines["messages"].list.first().struct.field("content").list.first().struct.field("text").to_list()
    assert sorted(sum(users, [])) == sorted(order) and all(part == sorted(part, key=order.index) for part in users)
    again, _ = export.bedrock_shards(prompts, seed=0, max_records=20)
    other, _ = export.bedrock_shards(prompts, seed=1, max_records=20)
    assert all(a.equals(b) for a, b in zip(shards, again)) and not all(a.equals(b) for a, b in zip(shards, other))
    assert export.shard_paths("bedrock", "train", 45, max_records=20) == [f"bedrock/train-0000{k}-of-00003.jsonl" for k in range(3)]


def test_a_split_above_20000_lines_is_cut_into_job_files_listed_in_the_card(tmp_path, config):  # noqa: F811
    splits = {"train": many_samples(20_001), "test": many_samples(3)}
    runs = []
    for run in ("first", "second"):
        folder = tmp_path / run
        folder.mkdir()
        runs.append((folder, write_export(folder, "v1", SIMPLE, splits, config, provenance(config))))
    (folder, written), (other, _) = runs
    assert tree(folder) == tree(other)  # deterministic, shards included
    names = sorted(path for path in tree(folder) if path.startswith("bedrock/"))
    assert names == ["bedrock/test.jsonl", "bedrock/train-00000-of-00002.jsonl", "bedrock/train-00001-of-00002.jsonl"]
    assert [len((folder / name).read_text().splitlines()) for name in names[1:]] == [10_000, 10_001]
    verification = verify_export(folder, written)
    assert verification["problems"].sum() == 0 and verification.filter(pl.col("lines") != pl.col("expected")).height == 0
    card = (folder / "README.md").read_text()
    front = yaml.safe_load(card.removeprefix("---\n").split("\n---\n", 1)[0])
    bedrock = next(c for c in front["configs"] if c["config_name"] == "bedrock")
    assert bedrock["data_files"][0] == {"split": "train", "path": names[1:]}
    assert "cut into the fewest files of at most 20,000" in card and "Nova 2 Lite (`lite-2.0`): at least 200" in card
    assert "no validation set" in card


def test_bedrock_problems_count_the_lines_beyond_the_job_limit():
    lines, _ = export.bedrock(default_prompts(many_samples(1), SIMPLE))
    assert export.bedrock_problems(pl.concat([lines] * (export.BEDROCK_MAX_RECORDS + 3))) == 3


# --- verl and QE --------------------------------------------------------------------------------------------


def test_verl_rows(frames):  # noqa: F811
    samples = frames["train"].filter(pl.col("target_model") == SIMPLE)
    prompts = default_prompts(samples, SIMPLE)
    rows = export_rl.verl(samples, prompts, SIMPLE, "tqc_v1_simple", "train")
    assert rows.columns == export_rl.VERL_COLUMNS and export_rl.verl_problems(rows) == 0
    first = rows.row(0, named=True)
    assert first["reward_model"] == {"style": "rule", "ground_truth": export_rl.grpo(samples, prompts, SIMPLE)["answer"][0]}
    assert first["extra_info"] == {"split": "train", "index": 0, "sample_id": samples["sample_id"][0]}
    broken = rows.with_columns(pl.col("extra_info").struct.with_fields(pl.lit(7).alias("index")))
    assert export_rl.verl_problems(broken) == rows.height - (7 < rows.height)
    assert export_rl.verl_problems(rows.drop("ability")) == rows.height


@pytest.mark.parametrize("target_lang, lp", [("zh-cn", "en-zh"), ("ru-ru", "en-ru"), ("DE", "en-de"), ("pt_BR", "en-pt"), (None, "en-und"), ("chinese", "en-und")])
def test_qe_rows(target_lang, lp):
    samples = samples_frame([sample("meta_Home_and_Kitchen_1_0", scores=[5.0, 4.0, 3.0, 5.0, 5.0, 5.0, 4.5], target_lang=target_lang)])
    rows = export_qe.qe(samples, "test")
    assert rows.columns == export_qe.QE_COLUMNS and export_qe.qe_problems(rows) == 0
    row = rows.row(0, named=True)
    assert row["score"] == pytest.approx(31.5 / 7 / 5) and row["lp"] == lp and row["split"] == "test"
    assert [row[name] for name in export_qe.CRITERION_COLUMNS] == [5.0, 4.0, 3.0, 5.0, 5.0, 5.0, 4.5]
    assert export_qe.qe_problems(rows.with_columns(score=pl.lit(1.5))) == 1


# --- the reference reward -----------------------------------------------------------------------------------

RATING = st.floats(min_value=0, max_value=5, allow_nan=False).map(lambda r: round(r, 2))


@given(pairs=st.lists(st.tuples(RATING, RATING), min_size=1, max_size=7), thought=st.text(max_size=40))
def test_the_reward_is_one_minus_the_mean_absolute_error_over_five(pairs, thought):
    reference, predicted = [p[0] for p in pairs], [p[1] for p in pairs]
    completion = f"<think>{thought}</think>, my ratings is {json.dumps(predicted)}"
    reward = rating_reward(completion, reference)
    assert 0 <= reward <= 1
    assert reward == pytest.approx(1 - sum(abs(a - b) for a, b in pairs) / len(pairs) / 5)
    assert rating_reward(f"my ratings is {json.dumps(reference)}", reference) == 1.0
    assert compute_score("tqc_v1_simple", completion, json.dumps(reference)) == reward
    assert ratings_reward([[{"role": "assistant", "content": completion}]], [reference]) == [reward]


@given(reference=st.lists(RATING, min_size=1, max_size=7), text=st.text(alphabet=st.characters(blacklist_characters="[]"), max_size=60))
def test_an_unparseable_or_mismatched_completion_earns_nothing(reference, text):
    assert rating_reward(text, reference) == 0.0
    assert rating_reward(f"{text} {json.dumps(reference + [5.0])}", reference) == 0.0
    assert rating_reward(f"{text} [{', '.join(['6.0'] * len(reference))}]", reference) == 0.0


def test_parse_ratings_takes_the_last_list():
    assert parse_ratings("<think>[1, 2]</think>, my ratings is [5.0, 4.5]") == [5.0, 4.5]
    assert parse_ratings("no list") is None and math.isclose(rating_reward("[2.5]", [5.0]), 0.5)


# --- the card's provenance ----------------------------------------------------------------------------------


def test_card_paths_are_relative_to_the_storage_root_or_redacted():
    assert card_path("/data/lake", "/data/lake") == "."
    assert card_path("/data/raw/*/x.jsonl.out", "/data/lake") == "../raw/*/x.jsonl.out"
    assert card_path("s3://bucket/raw/*.jsonl.out", "/data/lake") == "s3://bucket/raw/*.jsonl.out"
    assert card_path("/home/me/cache", "s3://bucket/lake") == REDACTED
    assert card_path("/home/alice/raw/*.jsonl.out", "/data/lake") == REDACTED  # `../../home/alice/...` names the machine


def test_card_tables_are_the_same_bytes_whatever_the_polars_display_environment(monkeypatch):
    from tqc_dagster.core.dataset_card import _table

    frame = pl.DataFrame({"model": ["anthropic.claude-3-5-sonnet-20241022-v2:0"], "samples": [1234567], "share": [0.5]})
    plain = _table(frame)
    assert "anthropic.claude-3-5-sonnet-20241022-v2:0" in plain  # no name is cut
    for name, value in {"POLARS_FMT_STR_LEN": "5", "POLARS_TABLE_WIDTH": "20", "POLARS_FMT_TABLE_CELL_NUMERIC_ALIGNMENT": "LEFT",
                        "POLARS_FMT_MAX_ROWS": "1", "POLARS_FMT_TABLE_FORMATTING": "ASCII_FULL"}.items():
        monkeypatch.setenv(name, value)
    assert _table(frame) == plain


def test_a_missing_grpo_rating_is_a_problem():
    rows = pl.DataFrame({
        "prompt": [[{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]] * 2,
        "system": ["s", "s"], "problem": ["u", "u"], "answer": ["[5.0]", "[5.0]"], "ratings": [[5.0], [None]],
    })
    assert export_rl.grpo_problems(rows) == 1


def test_card_config_and_fingerprint_hold_no_absolute_path(config):  # noqa: F811
    dumped = card_config(config)
    assert dumped["storage_root"] == "." and dumped["judge_versions"]["v1"]["input"] == "../raw/*/*.jsonl.out"
    assert str(config.config_path.rsplit("/", 1)[0]) not in json.dumps(dumped)
    raw = config.judge_versions["v1"].input.replace("*/*.jsonl.out", "")
    states = {f"{raw}a/1.jsonl.out": FileState(10, "111"), f"{raw}b/2.jsonl.out": FileState(20, "222")}
    fingerprint = input_fingerprint(states, config.judge_versions["v1"].input, config.storage_root)
    assert [f["path"] for f in fingerprint["files"]] == ["a/1.jsonl.out", "b/2.jsonl.out"]  # below the pattern's folder
    changed = input_fingerprint(states | {f"{raw}b/2.jsonl.out": FileState(20, "223")}, config.judge_versions["v1"].input, config.storage_root)
    assert len(fingerprint["sha256"]) == 16 and changed["sha256"] != fingerprint["sha256"]
