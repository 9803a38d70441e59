"""Judge agreement on planted disagreement, and consensus-filtered training sets."""

from __future__ import annotations

import random

import polars as pl
import pytest
from click.testing import CliRunner

from tqc_dagster.cli import main
from tqc_dagster.config import load_config
from tqc_dagster.core.agreement import OVERALL, agreement, consensus_mask, paired
from tqc_dagster.core.judgments import Thresholds
from tqc_dagster.resources.storage import asset_path
from tqc_dagster.schemas import JudgeAgreement
from tqc_dagster_tests.conftest import write_config
from tqc_dagster_tests.samples import sample, samples_frame, scores_for

THRESHOLDS = Thresholds()
BUCKETS = range(6)


def kappa_by_definition(pairs: list[tuple[int, int]]) -> float:
    """Quadratic-weighted kappa from the confusion matrix, the textbook way."""
    n = len(pairs)
    observed = [[0.0] * 6 for _ in BUCKETS]
    for a, b in pairs:
        observed[a][b] += 1 / n
    rows = [sum(observed[i]) for i in BUCKETS]
    cols = [sum(observed[i][j] for i in BUCKETS) for j in BUCKETS]
    weight = lambda i, j: (i - j) ** 2 / 25  # noqa: E731
    disagreement = sum(weight(i, j) * observed[i][j] for i in BUCKETS for j in BUCKETS)
    expected = sum(weight(i, j) * rows[i] * cols[j] for i in BUCKETS for j in BUCKETS)
    return 1 - disagreement / expected


def planted(seed: int = 3, n: int = 300) -> tuple[pl.DataFrame, pl.DataFrame, list[tuple[int, int]]]:
    """v1 and v2 on the same records; v2 moves criterion 3's score on a known third of them."""
    rng = random.Random(seed)
    first, second, buckets = [], [], []
    for i in range(n):
        score_a = rng.choice([0.0, 1.5, 2.0, 3.0, 4.5, 5.0])
        score_b = score_a if i % 3 else rng.choice([0.5, 2.5, 3.5, 4.0, 5.0])
        first.append(sample(f"meta_Books_{i}_0", scores=scores_for(3, score_a), judge_version="v1"))
        second.append(sample(f"meta_Books_{i}_0", scores=scores_for(3, score_b), judge_version="v2"))
        buckets.append((int(score_a), int(score_b)))
    return samples_frame(first), samples_frame(second), buckets


def test_planted_kappa_and_confusion_counts_are_recovered():
    first, second, buckets = planted()
    table = agreement(paired(first, second), THRESHOLDS)
    JudgeAgreement.validate(table)
    row = table.filter(pl.col("criterion") == "3").row(0, named=True)
    assert row["n_both"] == 300
    assert row["weighted_kappa"] == pytest.approx(kappa_by_definition(buckets), abs=1e-6)
    label = lambda bucket: "negative" if bucket < 3 else "positive"  # noqa: E731  (scores 0.5 steps: floor < 3 <=> score < 3)
    expected = {f"{x}_{y}": 0 for x in ("negative", "positive") for y in ("negative", "positive")}
    for a, b in buckets:
        expected[f"{label(a)}_{label(b)}"] += 1
    assert {name: row[name] for name in expected} == expected
    assert row["label_agreement"] == pytest.approx((expected["negative_negative"] + expected["positive_positive"]) / 300, abs=1e-6)
    untouched = table.filter(pl.col("criterion") == "0").row(0, named=True)
    assert untouched["weighted_kappa"] is None and untouched["label_agreement"] == 1.0  # neither judge varies there


def test_identical_judges_agree_perfectly_and_reversed_scores_correlate_negatively():
    first, _, _ = planted()
    same = agreement(paired(first, first.with_columns(pl.lit("v2").alias("judge_version"))), THRESHOLDS)
    row = same.filter(pl.col("criterion") == "3").row(0, named=True)
    assert row["weighted_kappa"] == pytest.approx(1.0) and row["spearman"] == pytest.approx(1.0) and row["label_agreement"] == 1.0
    reversed_scores = first.with_columns(pl.col("scores").list.eval(5.0 - pl.element()))
    assert agreement(paired(first, reversed_scores), THRESHOLDS).filter(pl.col("criterion") == "3")["spearman"][0] == pytest.approx(-1.0)
    assert same.filter(pl.col("criterion") == OVERALL)["label_agreement"][0] == 1.0


def test_consensus_keeps_exactly_the_agreed_samples():
    first = samples_frame([
        sample("meta_Books_1_0", scores=scores_for(3, 2.0)),  # other judge: 2.5 -> same negative label, bucket 2
        sample("meta_Books_2_0", scores=scores_for(3, 2.0)),  # other judge: 4.0 -> positive: label disagrees, buckets 2 vs 4
        sample("meta_Books_3_0", scores=scores_for(3, 4.0)),  # other judge: 3.0 -> same label, buckets 4 vs 3
        sample("meta_Books_4_0", scores=scores_for(None)),  # flawless; other judge: 6 at 3.5 -> complex label differs, bucket 5 vs 3
        sample("meta_Books_5_0", scores=scores_for(3, 1.0)),  # never judged by the other version
    ])
    second = samples_frame([
        sample("meta_Books_1_0", scores=scores_for(3, 2.5), judge_version="v2"),
        sample("meta_Books_2_0", scores=scores_for(3, 4.0), judge_version="v2"),
        sample("meta_Books_3_0", scores=scores_for(3, 3.0), judge_version="v2"),
        sample("meta_Books_4_0", scores=scores_for(6, 3.5), judge_version="v2"),
    ])
    assert consensus_mask(first, [second], "label", THRESHOLDS).to_list() == [True, False, True, False, False]
    assert consensus_mask(first, [second], "bucket", THRESHOLDS).to_list() == [True, False, True, False, False]


def test_consensus_option_filters_the_training_sets(full_run, demo_dir, tmp_path, monkeypatch):
    """Same data, policy none (the session's full run) vs label (a copy of it, its splits and exports rerun):
    trainsets differ by exactly the judged samples the judges disagree on."""
    trainsets = {"none": pl.read_parquet(asset_path(load_config(full_run.config_path).storage_root, "trainset", "v1", "model_a"))}
    folder = full_run.copy(tmp_path / "label").parent
    monkeypatch.setenv("DAGSTER_HOME", str(folder / "dagster_home"))
    config_path = write_config(folder, demo_dir, consensus={"policy": "label"})
    result = CliRunner().invoke(main, ["run", "--config", str(config_path), "--judge-version", "v1", "--select", "trainset,testset,balanced_trainset,exports"])
    assert result.exit_code == 0, result.output
    trainsets["label"] = pl.read_parquet(asset_path(load_config(config_path).storage_root, "trainset", "v1", "model_a"))
    card = (tmp_path / "label" / "lake" / "exports" / "v1" / "simple" / "README.md").read_text()
    assert "Consensus policy: `label`" in card
    v2 = pl.read_parquet(asset_path(load_config(tmp_path / "label" / "tqc.yaml").storage_root, "processed_samples", "v2", "model_a"))
    unfiltered = trainsets["none"].filter(pl.col("origin") == "judged")
    agreed = unfiltered.filter(consensus_mask(unfiltered, [v2], "label", THRESHOLDS))
    assert 0 < agreed.height < unfiltered.height
    assert trainsets["label"].filter(pl.col("origin") == "judged").sort("sample_id").equals(agreed.sort("sample_id"))
    assert trainsets["label"].filter(pl.col("origin") == "synthetic").height == trainsets["none"].filter(pl.col("origin") == "synthetic").height
