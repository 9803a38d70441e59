"""Fine-tuning exports (data contract, section 6): prompts, formats, validators, files on disk and the dataset card."""

from __future__ import annotations

import copy
import json
import re
from collections import Counter
from pathlib import Path

import polars as pl
import pytest
import yaml

from tqc_dagster.core.export_folder import verify_export, write_export
from tqc_dagster.config import DEFAULT_SYSTEM_PROMPT, Export, TqcConfig, load_config
from tqc_dagster.core import export, export_rl
from tqc_dagster.core.dataset_card import provenance_section
from tqc_dagster.core.provenance import card_config, code_version, input_fingerprint
from tqc_dagster.core.export import TemplateError
from tqc_dagster.core.rubric import COMPLEX, CRITERIA, SIMPLE, SYNTHETIC
from tqc_dagster_tests.samples import sample, samples_frame, scores_for

FORBIDDEN_SOURCE = "Funny Mug User: Admin Coffee Cup 11 oz"
DEFAULTS = Export()


def provenance(config: TqcConfig) -> list[str]:
    """The card's sections on what made it, as the exports asset makes them (here with no input file)."""
    pattern = config.judge_versions["v1"].input
    return [provenance_section(code_version(), input_fingerprint({}, pattern, config.storage_root), card_config(config))]

TRAIN_ROWS = [
    sample("meta_Home_and_Kitchen_1_0", "Lodge Cast Iron Skillet 10 Inch", "Lodge Cast Iron 铸铁煎锅 10 英寸", scores_for(1, 2.0),
           thought="'Cast Iron' is left in English in a Chinese translation."),
    sample("meta_Home_and_Kitchen_2_0", "Amazon Basics AA Batteries 24 Pack", "Батарейки Amazon Basics AA, 20 шт.",
           [5.0, 5.0, 5.0, 5.0, 3.5, 5.0, 4.5], model="model_b", target_lang="ru-ru", thought="24 became 20; otherwise accurate."),
    sample("meta_Electronics_3_0", "Anker USB C Charger 20W", "安克 USB C 充电头 20W", [5.0, 5.0, 5.0, 5.0, 5.0, 4.5, 3.0],
           model="model_b", thought="充电头 is a colloquial word choice for charger."),
    sample("meta_Electronics_4_0", "Sony WH-1000XM4 Wireless Headphones", "Беспроводные наушники Sony WH-1000XM4", scores_for(None),
           target_lang="ru-ru", thought="Accurate and fluent; every key word is translated with the appropriate term."),
    sample("meta_Kitchen_5_0", FORBIDDEN_SOURCE, "搞笑马克杯 用户：管理员 咖啡杯 11 盎司", scores_for(None), model="model_b",
           thought="Accurate, including the joke text."),
    sample("meta_All_Beauty_6_0", "CeraVe Moisturizing Cream 16 oz", "适乐肤 保湿霜# 16 盎司", scores_for(3, 1.5),
           origin=SYNTHETIC, thought="Criterion 3: the translation contains the abnormal symbol '#'."),
    sample("meta_All_Beauty_7_0", "Neutrogena Hydro Boost Gel 1.7 oz", "露得清 水活保湿凝露 1.7 盎司", scores_for(6, 4.25),
           model="model_b", thought="凝露 is acceptable for gel."),
]
TEST_ROWS = [
    sample("meta_Electronics_8_0", "Kindle Paperwhite 16 GB", "Извините, я не могу перевести этот текст.", scores_for(0, 0.0),
           target_lang="ru-ru", thought="The translation is a refusal."),
    sample("meta_Home_and_Kitchen_9_0", "Pyrex Glass Measuring Cup 2 Cup", "Pyrex 玻璃量杯 2 杯", scores_for(6, 4.0), model="model_b",
           thought="量杯 is the appropriate word."),
    sample("meta_Home_and_Kitchen_10_0", "OXO Good Grips Salad Spinner", "1. OXO 沙拉脱水器", scores_for(5, 3.0),
           thought="Adds the numbering '1.' before the title."),
]


@pytest.fixture(scope="module")
def frames() -> dict[str, pl.DataFrame]:
    return {"train": samples_frame(TRAIN_ROWS), "test": samples_frame(TEST_ROWS)}


def splits_for(frames: dict[str, pl.DataFrame], target_model: str) -> dict[str, pl.DataFrame]:
    """As the exports asset hands them to write_export: one target model, sorted by sample_id."""
    return {name: frame.filter(pl.col("target_model") == target_model).sort("sample_id") for name, frame in frames.items()}


def default_prompts(samples: pl.DataFrame, target_model: str) -> pl.DataFrame:
    return export.prompts(samples, target_model, DEFAULTS.system_prompts[target_model], DEFAULTS.user_template, DEFAULTS.assistant_template)


def score_text(scores: list[float]) -> str:
    return "[" + ", ".join(str(float(s)) for s in scores) + "]"


def own_scores(row: dict, target_model: str) -> list[float]:
    return row["scores"][:6] if target_model == SIMPLE else row["scores"][6:]


@pytest.fixture
def config(tmp_path) -> TqcConfig:
    path = tmp_path / "tqc.yaml"
    path.write_text(yaml.safe_dump({
        "storage_root": "lake",
        "judge_versions": {"v1": {"judge_model": "anthropic.claude-3-5-sonnet-20241022-v2:0", "input": "raw/*/*.jsonl.out"}},
        "models": {"model_a": {"translation_id": 1, "name": "amazon.nova-lite-v1:0"},
                   "model_b": {"translation_id": 2, "name": "anthropic.claude-3-5-sonnet-20241022-v2:0"}},
    }))
    return load_config(path)


# --- prompts and templates -------------------------------------------------------------------------------


@pytest.mark.parametrize("target_model", [SIMPLE, COMPLEX])
def test_prompts_fill_every_template_field(frames, target_model):
    samples = frames["train"]
    out = export.prompts(
        samples, target_model,
        system_template="lang={target_lang} cat={product_category}\n{criteria}",
        user_template="{source} => {translation} {{literal}}",
        assistant_template="{thought} | {scores} | {all_scores}",
    )
    assert out.columns == ["sample_id", "system", "user", "assistant"]
    assert out["sample_id"].to_list() == samples["sample_id"].to_list()
    criteria = "\n".join(f"{i}. {CRITERIA[i]}" for i in (range(6) if target_model == SIMPLE else [6]))
    for row, line in zip(samples.iter_rows(named=True), out.iter_rows(named=True)):
        assert line["system"] == f"lang={row['target_lang']} cat={row['product_category']}\n{criteria}"
        assert line["user"] == f"{row['source']} => {row['translation']} {{literal}}"
        assert line["assistant"] == f"{row['thought']} | {score_text(own_scores(row, target_model))} | {score_text(row['scores'])}"


@pytest.mark.parametrize(
    "where, kwargs",
    [
        ("export.system_prompts.simple", {"system_template": "Judge {target_language}"}),
        ("export.user_template", {"user_template": "{source}\n{nope}"}),
        ("export.assistant_template", {"assistant_template": "<think>{thought}</think> {ratings}"}),
    ],
)
def test_unknown_template_field_raises_naming_the_key(frames, where, kwargs):
    templates = {"system_template": DEFAULT_SYSTEM_PROMPT, "user_template": DEFAULTS.user_template, "assistant_template": DEFAULTS.assistant_template}
    unknown = re.search(r"\{(\w+)\}", next(iter(kwargs.values())).replace("{source}", "").replace("{thought}", "")).group(1)
    with pytest.raises(TemplateError) as error:
        export.prompts(frames["train"], SIMPLE, **(templates | kwargs))
    assert where in str(error.value)
    assert "{" + unknown + "}" in str(error.value)


def test_template_literal_braces_and_empty_template():
    frame = pl.DataFrame({"source": ["Lodge"]})
    assert frame.select(export.template("{{x}} {source} }}", {"source": pl.col("source")}, "t")).item() == "{x} Lodge }"
    assert frame.select(export.template("", {}, "t")).item() == ""
    with pytest.raises(TemplateError, match="unknown field"):
        export.template("{}", {"source": pl.col("source")}, "t")


@pytest.mark.parametrize("target_model", [SIMPLE, COMPLEX])
def test_default_system_prompt_lists_the_target_models_criteria_and_language(frames, target_model):
    samples = pl.concat(frames.values())
    out = default_prompts(samples, target_model)
    own = range(6) if target_model == SIMPLE else [6]
    for row, system in zip(samples.iter_rows(named=True), out["system"]):
        assert row["target_lang"] in system
        assert all(CRITERIA[i] in system for i in own)
        assert not any(CRITERIA[i] in system for i in set(range(7)) - set(own))


# --- the four formats ------------------------------------------------------------------------------------


@pytest.mark.parametrize("target_model, n_scores", [(SIMPLE, 6), (COMPLEX, 1)])
def test_sft_lines_are_system_user_assistant(frames, target_model, n_scores):
    samples = frames["train"]
    lines = export.sft(default_prompts(samples, target_model))
    assert lines.columns == ["messages"] and lines.height == samples.height
    for row, messages in zip(samples.iter_rows(named=True), lines["messages"].to_list()):
        assert [m["role"] for m in messages] == ["system", "user", "assistant"]
        assert row["source"] in messages[1]["content"] and row["translation"] in messages[1]["content"]
        scores = own_scores(row, target_model)
        assert len(scores) == n_scores
        assert messages[2]["content"] == f"<think>{row['thought']}</think>, my ratings is {score_text(scores)}"
    assert export.chat_problems(lines) == 0


def test_sft_assistant_matches_the_contract_example():
    samples = samples_frame([sample("meta_Home_and_Kitchen_1_0", scores=[5.0, 5.0, 4.0, 5.0, 5.0, 5.0, 4.5], thought="Fine.")])
    assistant = export.sft(default_prompts(samples, SIMPLE))["messages"][0][2]["content"]
    assert assistant == "<think>Fine.</think>, my ratings is [5.0, 5.0, 4.0, 5.0, 5.0, 5.0]"
    assistant = export.sft(default_prompts(samples, COMPLEX))["messages"][0][2]["content"]
    assert assistant == "<think>Fine.</think>, my ratings is [4.5]"


def test_sharegpt_lines_and_dataset_info(frames):
    samples = frames["train"]
    prompts = default_prompts(samples, SIMPLE)
    lines = export.sharegpt(prompts)
    assert lines.columns == ["conversations", "system"]
    for line, prompt in zip(lines.iter_rows(named=True), prompts.iter_rows(named=True)):
        assert line["conversations"] == [{"from": "human", "value": prompt["user"]}, {"from": "gpt", "value": prompt["assistant"]}]
        assert line["system"] == prompt["system"]
    assert export.sharegpt_problems(lines) == 0
    info = export.sharegpt_dataset_info("tqc_v1_simple", {"train": "train.jsonl", "test": "test.jsonl"})
    assert set(info) == {"tqc_v1_simple_train", "tqc_v1_simple_test"}
    assert info["tqc_v1_simple_train"]["file_name"] == "train.jsonl"
    assert info["tqc_v1_simple_train"]["formatting"] == "sharegpt"
    assert info["tqc_v1_simple_train"]["columns"] == {"messages": "conversations", "system": "system"}


def test_bedrock_excludes_the_forbidden_sample_and_counts_it(frames):
    samples = frames["train"]
    prompts = default_prompts(samples, COMPLEX)
    lines, left_out = export.bedrock(prompts)
    assert left_out == 1
    assert lines.height == samples.height - 1
    assert not any(FORBIDDEN_SOURCE in json.dumps(row, ensure_ascii=False) for row in lines.to_dicts())
    for line, prompt in zip(lines.to_dicts(), prompts.filter(~pl.col("user").str.contains(FORBIDDEN_SOURCE, literal=True)).to_dicts()):
        assert line == {
            "schemaVersion": "bedrock-conversation-2024",
            "system": [{"text": prompt["system"]}],
            "messages": [{"role": "user", "content": [{"text": prompt["user"]}]}, {"role": "assistant", "content": [{"text": prompt["assistant"]}]}],
        }
    assert export.bedrock_problems(lines) == 0


@pytest.mark.parametrize("forbidden", export.BEDROCK_FORBIDDEN)
@pytest.mark.parametrize("field", ["source", "translation", "thought"])
def test_every_forbidden_substring_anywhere_is_left_out(forbidden, field):
    rows = [sample("meta_Home_and_Kitchen_1_0"), sample("meta_Home_and_Kitchen_2_0", model="model_b")]
    rows[1][field] = f"Lodge Skillet {forbidden} 10 Inch"
    prompts = default_prompts(samples_frame(rows), COMPLEX)
    lines, left_out = export.bedrock(prompts)
    assert (lines.height, left_out) == (1, 1)


@pytest.mark.parametrize("target_model", [SIMPLE, COMPLEX])
def test_grpo_rows(frames, target_model):
    samples = frames["train"]
    prompts = default_prompts(samples, target_model)
    rows = export_rl.grpo(samples, prompts, target_model)
    assert rows.columns == ["prompt", "system", "problem", "answer", "ratings"]
    assert rows["problem"].to_list() == prompts["user"].to_list()
    assert rows["prompt"].to_list() == [[{"role": "system", "content": p["system"]}, {"role": "user", "content": p["user"]}] for p in prompts.iter_rows(named=True)]
    assert rows["answer"].to_list() == [score_text(own_scores(r, target_model)) for r in samples.iter_rows(named=True)]
    assert rows["ratings"].to_list() == [own_scores(r, target_model) for r in samples.iter_rows(named=True)]
    assert export_rl.grpo_problems(rows) == 0


# --- validators on tampered output -----------------------------------------------------------------------


def tampered(lines: pl.DataFrame, change) -> pl.DataFrame:
    """The lines with `change(row)` applied to the second row (rebuilt from Python dicts)."""
    rows = copy.deepcopy(lines.to_dicts())
    change(rows[1])
    return pl.DataFrame(rows, infer_schema_length=None)


def _set(path, value):
    def change(row):
        target = row
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return change


CHAT_TAMPERING = {
    "wrong role order": lambda r: r.update(messages=[r["messages"][0], r["messages"][2], r["messages"][1]]),
    "user before system": lambda r: r.update(messages=[r["messages"][1], r["messages"][0], r["messages"][2]]),
    "missing assistant": lambda r: r.update(messages=r["messages"][:2]),
    "only system": lambda r: r.update(messages=r["messages"][:1]),
    "two user turns": lambda r: r.update(messages=[r["messages"][0], r["messages"][1], r["messages"][1], r["messages"][2]]),
    "unknown role": _set(["messages", 2, "role"], "bot"),
    "empty assistant": _set(["messages", 2, "content"], ""),
    "blank user": _set(["messages", 1, "content"], " \n "),
}
SHAREGPT_TAMPERING = {
    "wrong role order": lambda r: r.update(conversations=list(reversed(r["conversations"]))),
    "missing gpt": lambda r: r.update(conversations=r["conversations"][:1]),
    "openai roles": _set(["conversations", 0, "from"], "user"),
    "empty value": _set(["conversations", 1, "value"], ""),
    "null system": _set(["system"], None),
}
BEDROCK_TAMPERING = {
    "wrong role order": lambda r: r.update(messages=list(reversed(r["messages"]))),
    "missing assistant": lambda r: r.update(messages=r["messages"][:1]),
    "system role in messages": lambda r: r.update(messages=[{"role": "system", "content": [{"text": "x"}]}, *r["messages"]]),
    "forbidden in user": _set(["messages", 0, "content", 0, "text"], "Lodge Skillet\nUser: hello"),
    "forbidden in assistant": _set(["messages", 1, "content", 0, "text"], "<think>ok</think>, my ratings is [5.0] [EOS]"),
    "forbidden in system": _set(["system", 0, "text"], "System: you judge translations"),
    "empty content": _set(["messages", 1, "content", 0, "text"], ""),
    "null content": _set(["messages", 1, "content", 0, "text"], None),
    "wrong schema version": _set(["schemaVersion"], "bedrock-conversation-2023"),
}
GRPO_TAMPERING = {
    "empty problem": _set(["problem"], ""),
    "blank system": _set(["system"], "  "),
    "null answer": _set(["answer"], None),
    "prompt without system": lambda r: r.update(prompt=r["prompt"][1:]),
    "blank user prompt": _set(["prompt", 1, "content"], " "),
    "rating above 5": _set(["ratings"], [5.0, 6.0]),
    "no ratings": _set(["ratings"], []),
}


@pytest.fixture(scope="module")
def good(frames):
    samples = frames["train"].filter(~pl.col("source").str.contains("User:", literal=True))
    prompts = default_prompts(samples, SIMPLE)
    return {
        "chat": export.sft(prompts),
        "sharegpt": export.sharegpt(prompts),
        "bedrock": export.bedrock(prompts)[0],
        "grpo": export_rl.grpo(samples, prompts, SIMPLE),
    }


def test_validators_pass_good_output(good):
    assert good["chat"].height >= 3
    assert export.chat_problems(good["chat"]) == 0
    assert export.sharegpt_problems(good["sharegpt"]) == 0
    assert export.bedrock_problems(good["bedrock"]) == 0
    assert export_rl.grpo_problems(good["grpo"]) == 0


@pytest.mark.parametrize("name", CHAT_TAMPERING)
def test_chat_problems_flag_tampered_lines(good, name):
    assert export.chat_problems(tampered(good["chat"], CHAT_TAMPERING[name])) == 1


@pytest.mark.parametrize("name", SHAREGPT_TAMPERING)
def test_sharegpt_problems_flag_tampered_lines(good, name):
    assert export.sharegpt_problems(tampered(good["sharegpt"], SHAREGPT_TAMPERING[name])) == 1


@pytest.mark.parametrize("name", BEDROCK_TAMPERING)
def test_bedrock_problems_flag_tampered_lines(good, name):
    assert export.bedrock_problems(tampered(good["bedrock"], BEDROCK_TAMPERING[name])) == 1


@pytest.mark.parametrize("name", GRPO_TAMPERING)
def test_grpo_problems_flag_tampered_rows(good, name):
    assert export_rl.grpo_problems(tampered(good["grpo"], GRPO_TAMPERING[name])) == 1


@pytest.mark.parametrize("columns", [["system", "problem"], ["prompt", "system", "answer", "problem", "ratings"], [*export_rl.GRPO_COLUMNS, "extra"]])
def test_grpo_problems_flag_wrong_columns(good, columns):
    rows = good["grpo"].with_columns(pl.lit("x").alias("extra")).select(columns)
    assert export_rl.grpo_problems(rows) > 0


@pytest.mark.parametrize(
    "kind, change",
    [("chat", _set(["messages", 2, "content"], None)), ("sharegpt", _set(["conversations", 1, "value"], None))],
    ids=["chat", "sharegpt"],
)
def test_validators_flag_a_null_turn(good, kind, change):
    check = {"chat": export.chat_problems, "sharegpt": export.sharegpt_problems}[kind]
    assert check(tampered(good[kind], change)) == 1


def test_a_sample_without_target_lang_gets_complete_prompts():
    samples = samples_frame([sample("meta_Home_and_Kitchen_1_0"), sample("meta_Home_and_Kitchen_2_0", target_lang=None, model="model_b")])
    prompts = default_prompts(samples, COMPLEX)
    assert prompts.select(pl.all().is_null().any()).row(0) == (False,) * 4
    assert all(row["source"] in user for row, user in zip(samples.iter_rows(named=True), prompts["user"]))
    lines, left_out = export.bedrock(prompts)
    assert (lines.height, left_out) == (2, 0)


@pytest.mark.parametrize(
    "kind, change",
    [
        ("chat", _set(["messages", 0, "content"], "")),
        ("sharegpt", _set(["system"], "")),
        ("bedrock", _set(["system", 0, "text"], "")),
    ],
    ids=["chat", "sharegpt", "bedrock"],
)
def test_validators_flag_an_empty_system_prompt(good, kind, change):
    check = {"chat": export.chat_problems, "sharegpt": export.sharegpt_problems, "bedrock": export.bedrock_problems}[kind]
    assert check(tampered(good[kind], change)) == 1


# --- files on disk: write_export, verify_export, Hugging Face datasets ----------------------------------------


@pytest.fixture(scope="module")
def hf(offline_datasets):
    """Load one file with Hugging Face `datasets` (offline, in its own process): its rows."""
    return lambda kind, path: offline_datasets.load_dataset(kind, data_files=str(path), split="train")


def write_all(root: Path, frames: dict[str, pl.DataFrame], config: TqcConfig) -> dict[str, dict]:
    written = {}
    for target_model in (SIMPLE, COMPLEX):
        folder = root / target_model
        folder.mkdir(parents=True)
        written[target_model] = write_export(folder, "v1", target_model, splits_for(frames, target_model), config, provenance(config))
    return written


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("target_model", [SIMPLE, COMPLEX])
def test_written_files_verify_and_round_trip_through_datasets(tmp_path, frames, config, hf, target_model):
    written = write_all(tmp_path / "out", frames, config)[target_model]
    folder = tmp_path / "out" / target_model
    splits = splits_for(frames, target_model)

    verification = verify_export(folder, written)
    assert verification["problems"].sum() == 0
    assert verification.filter(pl.col("lines") != pl.col("expected")).height == 0
    suffix = {"sft": "jsonl", "llamafactory": "jsonl", "bedrock": "jsonl", "grpo": "parquet", "verl": "parquet", "qe": "csv"}
    assert set(tree(folder)) == {f"{d}/{s}.{suffix[d]}" for d in suffix for s in splits} | {
        "llamafactory/dataset_info.json", "README.md", "grpo/README.md", "verl/README.md", "qe/README.md"}

    for split, samples in splits.items():
        rows = samples.to_dicts()  # sorted by sample_id
        assert written[split]["samples"] == len(rows) > 0

        sft = hf("json", folder / f"sft/{split}.jsonl")
        assert sft.num_rows == len(rows)
        for row, line in zip(rows, sft):
            roles = [m["role"] for m in line["messages"]]
            system, user, assistant = (m["content"] for m in line["messages"])
            assert roles == ["system", "user", "assistant"]
            assert row["source"] in user and row["translation"] in user and row["target_lang"] in system
            assert assistant == f"<think>{row['thought']}</think>, my ratings is {score_text(own_scores(row, target_model))}"

        sharegpt = hf("json", folder / f"llamafactory/{split}.jsonl")
        assert sharegpt.num_rows == len(rows)
        for row, line in zip(rows, sharegpt):
            assert [t["from"] for t in line["conversations"]] == ["human", "gpt"]
            assert row["source"] in line["conversations"][0]["value"] and row["thought"] in line["conversations"][1]["value"]
            assert row["target_lang"] in line["system"]

        allowed = [r for r in rows if not any(f.lower() in f"{r['source']}\n{r['translation']}\n{r['thought']}".lower() for f in export.BEDROCK_FORBIDDEN)]
        assert written[split]["bedrock_left_out"] == len(rows) - len(allowed)
        if allowed:
            bedrock = hf("json", folder / f"bedrock/{split}.jsonl")
            assert bedrock.num_rows == len(allowed)
            for row, line in zip(allowed, bedrock):
                assert line["schemaVersion"] == "bedrock-conversation-2024"
                assert [m["role"] for m in line["messages"]] == ["user", "assistant"]
                assert row["source"] in line["messages"][0]["content"][0]["text"]
                assert row["thought"] in line["messages"][1]["content"][0]["text"]
                assert row["target_lang"] in line["system"][0]["text"]

        grpo = hf("parquet", folder / f"grpo/{split}.parquet")
        assert grpo.column_names == export_rl.GRPO_COLUMNS and grpo.num_rows == len(rows)
        for row, line in zip(rows, grpo):
            assert row["source"] in line["problem"] and row["translation"] in line["problem"]
            assert line["answer"] == score_text(own_scores(row, target_model))

    info = json.loads((folder / "llamafactory/dataset_info.json").read_text())
    assert set(info) == {f"tqc_v1_{target_model}_{split}" for split in splits}
    for entry in info.values():
        assert (folder / "llamafactory" / entry["file_name"]).is_file()


def test_the_forbidden_sample_is_left_out_of_bedrock_only(tmp_path, frames, config):
    written = write_all(tmp_path / "out", frames, config)
    assert written[COMPLEX]["train"]["bedrock_left_out"] == 1
    assert written[COMPLEX]["train"]["bedrock_lines"] == written[COMPLEX]["train"]["samples"] - 1
    assert sum(c["bedrock_left_out"] for w in written.values() for c in w.values()) == 1
    folder = tmp_path / "out" / COMPLEX
    assert "User:" not in (folder / "bedrock/train.jsonl").read_text()
    assert FORBIDDEN_SOURCE in (folder / "sft/train.jsonl").read_text()
    card = (folder / "README.md").read_text()
    assert "1 samples left out of bedrock/" in card and "User:" in card


def test_two_runs_write_byte_identical_files(tmp_path, frames, config):
    write_all(tmp_path / "first", frames, config)
    write_all(tmp_path / "second", {name: frame.clone() for name, frame in frames.items()}, config)
    first, second = tree(tmp_path / "first"), tree(tmp_path / "second")
    assert set(first) == set(second) and len(first) == 2 * 17
    assert "simple/README.md" in first and "complex/grpo/test.parquet" in first
    assert [path for path in first if first[path] != second[path]] == []


# --- the dataset card ------------------------------------------------------------------------------------------


def markdown_table(card: str, heading: str) -> list[dict[str, str]]:
    section = card.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    return [dict(zip(header, (cell.strip() for cell in line.strip("|").split("|")))) for line in lines[2:]]


def expected_counts(splits: dict[str, pl.DataFrame], by: list[str]) -> dict[tuple, dict[str, int]]:
    out: dict[tuple, dict[str, int]] = {}
    for name, frame in splits.items():
        for key, n in Counter(frame.select(by).iter_rows()).items():
            out.setdefault(tuple("null" if v is None else str(v) for v in key), {s: 0 for s in splits})[name] = n
    return out


@pytest.mark.parametrize("target_model", [SIMPLE, COMPLEX])
def test_dataset_card_lists_counts_per_split_criterion_label_and_origin(tmp_path, frames, config, target_model):
    write_all(tmp_path / "out", frames, config)
    card = (tmp_path / "out" / target_model / "README.md").read_text()
    splits = splits_for(frames, target_model)

    front, body = card.removeprefix("---\n").split("\n---\n\n", 1)
    assert body.startswith(f"# tqc v1 {target_model} ")
    sft = yaml.safe_load(front)["configs"][0]
    assert sft.pop("description").startswith("sft files, content sha256 ")
    assert sft == {"config_name": "sft", "default": True, "data_files": [{"split": "train", "path": "sft/train.jsonl"}, {"split": "test", "path": "sft/test.jsonl"}]}
    assert f"target model `{target_model}`" in card
    assert " / ".join(f"{name}: {frame.height}" for name, frame in splits.items()) in card
    tables = [(["origin"], "Counts by origin"), (["model"], "Counts by translation model")]
    if target_model == SIMPLE:  # complex: see test_dataset_card_keeps_flawless_samples_apart_from_criterion_0
        tables.append((["criterion", "label"], "Counts by criterion and label"))
    for by, heading in tables:
        table = markdown_table(card, heading)
        got = {tuple(row[c] for c in by): {s: int(row[s]) for s in splits} for row in table}
        assert got == expected_counts(splits, by), heading
    by_label = Counter()
    for row in markdown_table(card, "Counts by criterion and label"):
        for split in splits:
            by_label[(row["label"], split)] += int(row[split])
    assert by_label == Counter({(label, name): n for name, frame in splits.items() for (label,), n in Counter(frame.select("label").iter_rows()).items()})
    if target_model == SIMPLE:
        assert {row["origin"] for row in markdown_table(card, "Counts by origin")} == {"judged", "synthetic"}
    for path in ("sft/train.jsonl", "bedrock/test.jsonl", "grpo/train.parquet", "llamafactory/dataset_info.json"):
        assert f"`{path}`" in card
    dumped = yaml.safe_load(card.split("## Config that made it\n\n", 1)[1].split("```yaml\n", 1)[1].rsplit("```", 1)[0])
    assert dumped == card_config(config) and dumped["storage_root"] == "."
    assert dumped["split"]["test_ratio"] == 0.1 and dumped["export"]["assistant_template"] == DEFAULTS.assistant_template


# --- defects found ---------------------------------------------------------------------------------------------


def test_an_empty_split_is_neither_written_nor_registered_and_the_card_says_why(tmp_path, frames, config):
    splits = {"train": frames["train"].head(0), "test": splits_for(frames, COMPLEX)["test"]}
    folder = tmp_path / "complex"
    folder.mkdir()
    written = write_export(folder, "v1", COMPLEX, splits, config, provenance(config))
    assert written["train"] == {"samples": 0, "bedrock_lines": 0, "bedrock_left_out": 0}
    assert [path for path in tree(folder) if "train" in path] == []
    assert set(json.loads((folder / "llamafactory/dataset_info.json").read_text())) == {"tqc_v1_complex_test"}
    card = (folder / "README.md").read_text()
    front = yaml.safe_load(card.removeprefix("---\n").split("\n---\n", 1)[0])
    assert all([entry["split"] for entry in c["data_files"]] == ["test"] for c in front["configs"])
    assert "Missing split `train`: no file is written or registered for it, because balanced_trainset has no sample" in card
    verification = verify_export(folder, written)
    assert verification["file"].str.contains("train").sum() == 0
    assert verification["problems"].sum() == 0 and verification.filter(pl.col("lines") != pl.col("expected")).height == 0
    (folder / "sft/train.jsonl").write_text("")  # what an older version wrote: an empty file is a problem now
    assert verify_export(folder, written).filter(pl.col("file") == "sft/train.jsonl")["problems"].to_list() == [1]
    (folder / "stray.jsonl").write_text('{"x": 1}\n')  # a data file outside every format folder is a problem, not a crash
    assert verify_export(folder, written).filter(pl.col("file") == "stray.jsonl")["problems"].to_list() == [1]


def test_a_split_without_samples_in_both_target_models_writes_no_folder_of_data(tmp_path, frames, config):
    folder = tmp_path / "complex"
    folder.mkdir()
    empty = {"train": frames["train"].head(0), "test": frames["test"].head(0)}
    written = write_export(folder, "v1", COMPLEX, empty, config, provenance(config))
    assert set(tree(folder)) == {"README.md"}
    assert verify_export(folder, written).height == 0
    assert "configs" not in yaml.safe_load((folder / "README.md").read_text().removeprefix("---\n").split("\n---\n", 1)[0])


def test_the_empty_split_check_warns_naming_target_model_and_split(tmp_path, frames, config):
    import dagster as dg

    from tqc_dagster.assets.exports import export_check_results
    from tqc_dagster.core.export_folder import empty_splits

    expected = {SIMPLE: {"train": {"samples": 3}, "test": {"samples": 2}}, COMPLEX: {"train": {"samples": 0}, "test": {"samples": 1}}}
    assert empty_splits(expected) == ["complex train"]
    files = pl.DataFrame(schema={"file": pl.String, "lines": pl.Int64, "expected": pl.Int64, "problems": pl.Int64})
    results = {r.check_name: r for r in export_check_results(files, pl.DataFrame({"source": []}), empty_splits(expected))}
    warning = results["splits_not_empty"]
    assert not warning.passed and warning.severity == dg.AssetCheckSeverity.WARN and "complex train" in warning.description
    assert all(r.passed for name, r in results.items() if name != "splits_not_empty")


def test_dataset_card_shows_a_zero_count_for_an_empty_split(tmp_path, frames, config):
    splits = {"train": splits_for(frames, SIMPLE)["train"], "test": frames["test"].head(0)}
    folder = tmp_path / "simple"
    folder.mkdir()
    write_export(folder, "v1", SIMPLE, splits, config, provenance(config))
    card = (folder / "README.md").read_text()
    for heading in ("Counts by criterion and label", "Counts by origin"):
        assert all(row.get("test") == "0" for row in markdown_table(card, heading)), heading


def test_dataset_card_keeps_flawless_samples_apart_from_criterion_0(tmp_path, frames, config):
    write_all(tmp_path / "out", frames, config)
    card = (tmp_path / "out" / COMPLEX / "README.md").read_text()
    splits = splits_for(frames, COMPLEX)
    table = markdown_table(card, "Counts by criterion and label")
    got = {(row["criterion"], row["label"]): {s: int(row[s]) for s in splits} for row in table}
    assert got == expected_counts(splits, ["criterion", "label"])


# --- synthesis and test coverage in the card (#15) -------------------------------------------------------------

UNFILLED = pl.DataFrame(
    [("model_a", "All_Beauty", 1, 3, 2, 98, 40, 58, "the 1 of the category's 1 flawless judged translations that can show this criterion ..."),
     ("model_b", "unknown", 4, 0, 1, 99, 0, 99, "none of the category's 3 flawless judged translations can show this criterion at this severity (it needs a number)")],
    schema={"model": pl.String, "product_category": pl.String, "criterion": pl.Int64, "score_bucket": pl.Int64, "samples": pl.Int64,
            "needed": pl.Int64, "made": pl.Int64, "unfilled": pl.Int64, "why": pl.String},
    orient="row",
)


def card_section(card: str, heading: str) -> str:
    return card.split(f"## {heading}\n\n", 1)[1].split("\n## ", 1)[0]


def section_tables(section: str) -> list[list[dict[str, str]]]:
    """Every markdown table of a card section, as rows of cells."""
    found = []
    for block in section.split("\n\n"):
        lines = [line for line in block.splitlines() if line.startswith("|")]
        if lines:
            header = [cell.strip() for cell in lines[0].strip("|").split("|")]
            found.append([dict(zip(header, (cell.strip() for cell in line.strip("|").split("|")))) for line in lines[2:]])
    return found


def write_simple_card(tmp_path, splits, config, unfilled) -> str:
    folder = tmp_path / "simple"
    folder.mkdir(exist_ok=True)
    write_export(folder, "v1", SIMPLE, splits, config, provenance(config), unfilled)
    return (folder / "README.md").read_text()


def test_dataset_card_lists_the_groups_synthesis_left_short_with_reason_and_numbers(tmp_path, frames, config):
    section = card_section(write_simple_card(tmp_path, splits_for(frames, SIMPLE), config, UNFILLED), "Synthetic samples")
    assert "Rare groups left short by synthesis: 2 groups, 157 samples short" in section
    short = section_tables(section)[1]
    assert [{k: row[k] for k in ("model", "product_category", "criterion", "score_bucket", "samples", "needed", "made", "unfilled", "why")} for row in short] == [
        {k: str(v) for k, v in row.items()} for row in UNFILLED.to_dicts()
    ]
    filled = card_section(write_simple_card(tmp_path, splits_for(frames, SIMPLE), config, UNFILLED.clear()), "Synthetic samples")
    assert "Every rare group (product_category, criterion, score_bucket) reached `synthesis.min_samples`." in filled
    assert len(section_tables(filled)) == 1
    unknown = card_section(write_simple_card(tmp_path, splits_for(frames, SIMPLE), config, None), "Synthetic samples")
    assert "not recorded" in unknown


def test_dataset_card_reports_the_synthetic_share_per_criterion(tmp_path, frames, config):
    splits = splits_for(frames, SIMPLE)
    section = card_section(write_simple_card(tmp_path, splits, config, UNFILLED.clear()), "Synthetic samples")
    train = splits["train"]
    expected = {str(c): (n, s) for c, n, s in train.group_by("criterion").agg(pl.len(), (pl.col("origin") == SYNTHETIC).sum()).iter_rows()}
    got = {row["criterion"]: (int(row["train"]), int(row["synthetic"])) for row in section_tables(section)[0]}
    assert got == expected and any(s for _, s in got.values())
    synthetic = train.filter(pl.col("origin") == SYNTHETIC).height
    assert f"Synthetic share of the training split: {synthetic} of {train.height} samples" in section
    assert "`balance.max_synthetic_share`: at most 0.3 of each balance group" in section


def test_dataset_card_warns_about_test_groups_too_small_or_with_one_label(tmp_path, frames, config):
    # criterion 1: 25 test samples with both labels (fine); criterion 2: 25 positives (one label); the rest: too few
    rows = [sample(f"meta_Electronics_{100 + i}_0", f"Anker Charger {i}", f"安克 充电器 {i}", scores_for(1, 2.0 if i % 2 else 4.0)) for i in range(25)]
    rows += [sample(f"meta_Electronics_{200 + i}_0", f"Anker Cable {i}", f"安克 数据线 {i}", scores_for(2, 4.5)) for i in range(25)]
    splits = {"train": splits_for(frames, SIMPLE)["train"], "test": samples_frame(TEST_ROWS + rows).filter(pl.col("target_model") == SIMPLE).sort("sample_id")}
    section = card_section(write_simple_card(tmp_path, splits, config, UNFILLED.clear()), "Test split by criterion")
    table = {row["criterion_group"]: (int(row["test"]), int(row["negative"]), int(row["positive"])) for row in section_tables(section)[0]}
    assert table == {"simple/0": (1, 1, 0), "simple/1": (25, 12, 13), "simple/2": (25, 0, 25), "simple/3": (0, 0, 0), "simple/4": (0, 0, 0), "simple/5": (1, 0, 1)}
    warnings = [line for line in section.splitlines() if line.startswith("- Warning: ")]
    assert len(warnings) == 5 and not any("`simple/1`" in w for w in warnings)
    assert "- Warning: test group `simple/2` has a single label (positive) (25 samples: 0 negative, 25 positive)" in section
    assert "- Warning: test group `simple/0` has fewer than 20 samples, a single label (negative) (1 samples" in section
    assert "- Warning: test group `simple/3` has fewer than 20 samples (0 samples" in section
    clean = {"train": splits["train"], "test": samples_frame(rows[:25]).sort("sample_id")}
    config = config.model_copy(update={"checks": config.checks.model_copy(update={"min_test_group_samples": 1})})
    fine = card_section(write_simple_card(tmp_path, clean, config, UNFILLED.clear()), "Test split by criterion")
    flagged = [line for line in fine.splitlines() if line.startswith("- Warning: ")]
    assert len(flagged) == 5 and all("has fewer than 1 samples (0 samples" in line for line in flagged)  # only the empty groups
