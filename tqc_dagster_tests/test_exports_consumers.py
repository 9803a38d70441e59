"""The exports of a real (small) pipeline run, read the way their consumers read them: Hugging Face `datasets` at
folder and config level, and the column contracts of TRL (SFT `messages`, GRPO `prompt`), verl and the QE CSV."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
import yaml

from tqc_dagster.config import load_config
from tqc_dagster.core.dataset_card import OWN_CARD, ROOT_CONFIGS
from tqc_dagster.core.export_rl import ABILITY, VERL_COLUMNS
from tqc_dagster.core.export_qe import CRITERION_COLUMNS, QE_COLUMNS
from tqc_dagster.core.provenance import code_version
from tqc_dagster.rewards import compute_score, ratings_reward
from tqc_dagster_tests.conftest import run_project

TARGET_MODELS = ("simple", "complex")


@pytest.fixture(scope="module")
def exported(full_run):
    """The session's full `tqc run` on the demo data (read only): the config and exports/v1/."""
    config = load_config(full_run.config_path)
    return config, Path(config.storage_root) / "exports" / "v1"


@pytest.fixture(scope="module")
def load(offline_datasets):
    """`datasets.load_dataset(folder[, name])`, offline, in its own process: {split: rows}."""
    return lambda path, name=None: offline_datasets.load_dataset(str(path), name)


@pytest.mark.parametrize("target_model", TARGET_MODELS)
def test_load_dataset_gives_train_and_test_for_the_folder_and_every_config(exported, load, target_model):
    _, root = exported
    folder = root / target_model
    sft_lines = {split: len((folder / f"sft/{split}.jsonl").read_text().splitlines()) for split in ("train", "test")}
    default = load(folder)
    assert {split: default[split].num_rows for split in default} == sft_lines and min(sft_lines.values()) > 0
    assert "messages" in default["train"].column_names
    for name in ROOT_CONFIGS:
        assert set(load(folder, name)) == {"train", "test"}, name
    for name in OWN_CARD:  # simple/grpo and complex/grpo share a folder name and one datasets cache: the digests keep them apart
        loaded, named = load(folder / name), load(folder / name, name)
        assert set(loaded) == set(named) == {"train", "test"}, name
        assert {s: loaded[s].num_rows for s in loaded} == sft_lines, name


@pytest.mark.parametrize("target_model", TARGET_MODELS)
def test_sft_and_grpo_follow_trls_column_contracts(exported, load, target_model):
    _, root = exported
    sft = load(root / target_model, "sft")["train"]
    assert sft.column_names == ["messages"]
    for row in sft.select(range(min(50, sft.num_rows))):
        assert [m["role"] for m in row["messages"]] == ["system", "user", "assistant"]
        assert all(isinstance(m["content"], str) and m["content"].strip() for m in row["messages"])
    grpo = load(root / target_model / "grpo")["train"]
    assert "prompt" in grpo.column_names and "ratings" in grpo.column_names
    n_ratings = 6 if target_model == "simple" else 1
    for row in grpo:
        assert [m["role"] for m in row["prompt"]] == ["system", "user"] and all(m["content"].strip() for m in row["prompt"])
        assert len(row["ratings"]) == n_ratings and all(isinstance(r, float) and 0 <= r <= 5 for r in row["ratings"])
    # the reference answer (what the SFT assistant turn ends with) earns the full reward; TRL passes conversational completions
    completions = [[{"role": "assistant", "content": f"<think>ok</think>, my ratings is {answer}"}] for answer in grpo["answer"]]
    assert ratings_reward(completions, grpo["ratings"]) == [1.0] * grpo.num_rows


@pytest.mark.parametrize("split", ["train", "test"])
@pytest.mark.parametrize("target_model", TARGET_MODELS)
def test_verl_layout(exported, target_model, split):
    rows = pl.read_parquet(exported[1] / target_model / f"verl/{split}.parquet")
    assert rows.columns == VERL_COLUMNS and rows.height > 0
    assert rows["data_source"].unique().to_list() == [f"tqc_v1_{target_model}"] and rows["ability"].unique().to_list() == [ABILITY]
    assert rows["prompt"].list.eval(pl.element().struct.field("role")).to_list() == [["system", "user"]] * rows.height
    reward, extra = rows["reward_model"].struct.unnest(), rows["extra_info"].struct.unnest()
    assert reward["style"].unique().to_list() == ["rule"]
    assert extra["split"].unique().to_list() == [split] and extra["index"].to_list() == list(range(rows.height))
    assert all(compute_score(f"tqc_v1_{target_model}", f"my ratings is {truth}", truth) == 1.0 for truth in reward["ground_truth"])


@pytest.mark.parametrize("split", ["train", "test"])
@pytest.mark.parametrize("target_model", TARGET_MODELS)
def test_qe_rows_carry_a_normalized_score_the_criteria_and_the_language_pair(exported, target_model, split):
    rows = pl.read_csv(exported[1] / target_model / f"qe/{split}.csv")
    assert rows.columns == QE_COLUMNS and rows.height > 0
    mean = pl.mean_horizontal(CRITERION_COLUMNS) / 5
    assert rows.select(((pl.col("score") - mean).abs() < 1e-9).all()).item()
    assert rows["score"].is_between(0, 1).all() and set(rows["lp"]) <= {"en-zh", "en-ru"} and set(rows["split"]) == {split}


def test_the_cards_hold_tags_provenance_and_no_machine_path(exported):
    config, root = exported
    cards = {path: path.read_text() for path in root.rglob("README.md")}
    assert len(cards) == 2 * (1 + len(OWN_CARD))
    machine = str(Path(config.config_path).parent)
    assert not [path for path, card in cards.items() if machine in card or os.path.expanduser("~") + "/" in card]
    for target_model in TARGET_MODELS:
        card = cards[root / target_model / "README.md"]
        front = yaml.safe_load(card.removeprefix("---\n").split("\n---\n", 1)[0])
        assert front["license"] == "other" and front["language"] == ["en", "ru", "zh"]
        assert [c["config_name"] for c in front["configs"]] == list(ROOT_CONFIGS) and front["configs"][0]["default"] is True
        assert f"git commit `{code_version()['commit']}`" in card and "Input fingerprint `" in card
        listed = card.split("## What made it", 1)[1]
        pattern = config.judge_versions["v1"].input  # .../c35-v2/*/*/*.jsonl.out: each v1 batch output listed below c35-v2/
        inputs = sorted(Path("/").glob(pattern.lstrip("/")))
        assert inputs and all(f"| `{path.relative_to(pattern.split('*')[0])}` |" in listed for path in inputs)


def test_the_exports_page_shows_the_cards_and_the_creation_time(exported):
    config, root = exported
    with dg.DagsterInstance.from_config(str(Path(config.config_path).parent / "dagster_home")) as instance:
        records = instance.fetch_materializations(dg.AssetRecordsFilter(dg.AssetKey("exports"), asset_partitions=["v1"]), limit=1).records
    metadata = records[0].asset_materialization.metadata
    for target_model in TARGET_MODELS:
        assert isinstance(metadata[f"dataset_card_{target_model}"], dg.MarkdownMetadataValue)
        assert metadata[f"dataset_card_{target_model}"].value == (root / target_model / "README.md").read_text()
    assert metadata["created_at"].value.startswith("20")
    lines = {kind: sum(len(path.read_text().splitlines()) for path in root.glob(f"*/{kind}/*.jsonl")) for kind in ("sft", "bedrock")}
    assert metadata["bedrock_left_out"].value == lines["sft"] - lines["bedrock"]
    assert not any(metadata["created_at"].value in path.read_text() for path in root.rglob("README.md"))


def test_a_rerun_clears_what_killed_runs_left_and_writes_the_same_exports(full_run, demo_dir, tmp_path):
    """A killed parquet write leaves `<file>.tmp-*`, a killed publish its staging (`.v1.tmp-*`) or the retired
    previous set (`.v1.old-*`); a rerun of v1 removes them and publishes identical files."""
    config = load_config(full_run.copy(tmp_path / "project"))
    lake = Path(config.storage_root)
    root = lake / "exports" / "v1"
    before = {path: path.read_bytes() for path in root.rglob("*") if path.is_file()}
    leftovers = [lake / "trainset/v1/model_a.parquet.tmp-0badc0de", lake / "exports/.v1.tmp-0badc0de/simple/sft/train.jsonl",
                 lake / "exports/.v1.old-0badc0de/complex/README.md"]
    for path in leftovers:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("left by a killed run")
    _, result = run_project(Path(config.config_path).parent, demo_dir, "--judge-version", "v1")
    assert result.exit_code == 0, result.output
    assert not [path for path in leftovers if path.exists()] and not list(lake.rglob("*.tmp-*"))
    assert sorted(path.name for path in (lake / "exports").iterdir()) == ["v1", "v2"]
    assert {path: path.read_bytes() for path in root.rglob("*") if path.is_file()} == before
