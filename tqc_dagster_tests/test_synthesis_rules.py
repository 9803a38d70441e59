"""The `rules` synthesis backend: each synthetic row shows its group's defect, fits its group, and is reproducible."""

from __future__ import annotations

from collections import Counter

import polars as pl
import pytest

from tqc_dagster.core.judgments import Thresholds
from tqc_dagster.core.rubric import MAX_SCORE, SIMPLE, SYNTHETIC
from tqc_dagster.core.synthesis import GROUP_KEYS, deficits, rows_outside_their_group
from tqc_dagster.core.synthesis import perturbations, rules
from tqc_dagster.core.synthesis.rules import RulesBackend
from tqc_dagster.schemas import Samples
from tqc_dagster_tests.samples import sample, samples_frame, scores_for

MIN_SAMPLES = 4
THRESHOLDS = Thresholds()

# flawless judged translations (all 7 scores 5): (source, translation, target_lang)
FLAWLESS = [
    ("Lodge Cast Iron Skillet 10 Inch", "Lodge 铸铁煎锅 10 英寸", "zh-cn"),
    ("Amazon Basics AA Batteries 24 Pack", "亚马逊基础款 AA 电池 24 节装", "zh-cn"),
    ("Pyrex Glass Measuring Cup 2 Cup", "Pyrex 玻璃量杯 2 杯", "zh-cn"),
    ("Lodge Cast Iron Skillet 10 Inch", "Чугунная сковорода Lodge 10 дюймов", "ru-ru"),
    ("Amazon Basics AA Batteries 24 Pack", "Батарейки Amazon Basics AA, 24 шт.", "ru-ru"),
    ("OXO Good Grips Salad Spinner 6.22 Quart", "Сушилка для салата OXO Good Grips 6.22 л", "ru-ru"),
]
CATEGORIES = ["Home_and_Kitchen", "Electronics"]
# small simple-model groups: (criterion, lowest score) -> one judged sample each
SMALL_GROUPS = [(c, s) for c in range(6) for s in (1.5, 3.0)] + [(4, 0.5), (2, 4.5), (3, 2.0)]


def judged_samples() -> pl.DataFrame:
    rows = []
    for category in CATEGORIES:
        for i, (source, translation, lang) in enumerate(FLAWLESS):
            model = "model_a" if i % 2 else "model_b"
            rows.append(sample(f"meta_{category}_{i}_0", source, translation, scores_for(None), model=model, target_lang=lang))
        for j, (criterion, score) in enumerate(SMALL_GROUPS):
            rows.append(sample(f"meta_{category}_{100 + j}_1", "Hamilton Beach Blender 40 oz", "汉美驰 搅拌机 40 盎司", scores_for(criterion, score)))
        # a large group (>= MIN_SAMPLES) that must not be topped up, and complex-model samples that are never synthesized
        rows += [sample(f"meta_{category}_{200 + k}_2", "Hamilton Beach Blender 40 oz", "汉美驰 搅拌机 40 盎司", scores_for(1, 2.0)) for k in range(MIN_SAMPLES)]
        rows += [sample(f"meta_{category}_{300 + k}_3", "Hamilton Beach Blender 40 oz", "汉美驰 搅拌机 40 盎司", scores_for(6, 2.0)) for k in range(2)]
    # a category with no flawless translation at all
    rows += [sample("meta_All_Beauty_1_0", "Burt's Bees Lip Balm 4 Pack", "小蜜蜂润唇膏 4 支装", scores_for(0, 1.0))]
    # a category whose flawless translations contain no number: criterion 4 cannot be shown
    rows += [
        sample("meta_Toys_and_Games_1_0", "Melissa Doug Wooden Train Set", "Melissa Doug 木制火车套装", scores_for(None)),
        sample("meta_Toys_and_Games_2_0", "LEGO Classic Creative Bricks", "LEGO 经典创意积木", scores_for(None), model="model_b"),
        sample("meta_Toys_and_Games_3_0", "Hot Wheels Track Builder", "风火轮 轨道套装", scores_for(4, 1.0)),
        sample("meta_Toys_and_Games_4_0", "Hot Wheels Track Builder", "风火轮 轨道套装", scores_for(0, 1.0)),
        # more samples needed than there are bases: the backend moves on to its other corruption variants (fillers)
        sample("meta_Toys_and_Games_5_0", "Hot Wheels Track Builder", "风火轮 轨道套装", scores_for(2, 1.0)),
        sample("meta_Toys_and_Games_6_0", "Hot Wheels Track Builder", "风火轮 轨道套装", scores_for(2, 4.0)),
    ]
    return samples_frame(rows)


@pytest.fixture(scope="module")
def judged() -> pl.DataFrame:
    return judged_samples()


@pytest.fixture(scope="module")
def wanted(judged) -> pl.DataFrame:
    return deficits(judged, MIN_SAMPLES)


@pytest.fixture(scope="module")
def output(judged, wanted):
    return RulesBackend(THRESHOLDS).synthesize(judged, wanted, seed=0)


@pytest.fixture(scope="module")
def with_base(output, judged) -> pl.DataFrame:
    """Each synthetic row with the judged translation it was made from (`base_translation`)."""
    bases = judged.select("judge_version", "model", pl.col("record_id").alias("base_record_id"), pl.col("translation").alias("base_translation"),
                          pl.col("source").alias("base_source"), pl.col("target_lang").alias("base_lang"), pl.col("scores").alias("base_scores"))
    frame = output.samples.with_columns(pl.col("record_id").str.split("#").list.first().alias("base_record_id"))
    joined = frame.join(bases, on=["judge_version", "model", "base_record_id"], how="left")
    assert joined["base_translation"].null_count() == 0, "every synthetic row names the judged sample it was made from"
    return joined


# --- deficits --------------------------------------------------------------------------------------------


def test_deficits_are_the_small_simple_groups(judged, wanted):
    assert wanted.columns == GROUP_KEYS + ["samples", "needed"]
    expected = Counter()
    for row in judged.filter(pl.col("target_model") == SIMPLE).iter_rows(named=True):
        expected[(row["product_category"], row["criterion"], row["score_bucket"])] += 1
    small = {k: v for k, v in expected.items() if v < MIN_SAMPLES}
    got = {(r["product_category"], r["criterion"], r["score_bucket"]): (r["samples"], r["needed"]) for r in wanted.iter_rows(named=True)}
    assert got == {k: (v, MIN_SAMPLES - v) for k, v in small.items()}
    assert ("Home_and_Kitchen", 1, 2) not in got  # MIN_SAMPLES judged samples: not topped up
    assert 6 not in set(wanted["criterion"])  # the complex model is not synthesized
    assert wanted.select(GROUP_KEYS).rows() == sorted(wanted.select(GROUP_KEYS).rows())


# --- every row is a valid sample of a wanted group -------------------------------------------------------


def test_synthetic_rows_are_valid_samples_of_their_group(output, wanted):
    synthetic = output.samples
    assert synthetic.height > 0
    Samples.validate(synthetic)
    assert set(synthetic["origin"]) == {SYNTHETIC}
    assert set(synthetic["synthetic_backend"]) == {"rules"}
    assert set(synthetic["synthetic_model"]) == {rules.RULE_SET}
    assert set(synthetic["target_model"]) == {SIMPLE}
    assert rows_outside_their_group(synthetic, wanted, THRESHOLDS).height == 0
    assert synthetic.join(wanted, on=GROUP_KEYS, how="anti").height == 0
    assert synthetic["sample_id"].to_list() == sorted(synthetic["sample_id"].to_list())
    for row in synthetic.iter_rows(named=True):
        criterion, bucket, scores = row["criterion"], row["score_bucket"], row["scores"]
        assert [i for i, s in enumerate(scores) if s < MAX_SCORE] == [criterion]
        assert bucket <= scores[criterion] < bucket + 1
        assert row["label"] == ("negative" if scores[criterion] < THRESHOLDS.simple else "positive")


def test_synthetic_rows_keep_the_base_sample_context(with_base):
    for row in with_base.iter_rows(named=True):
        assert row["source"] == row["base_source"]
        assert row["target_lang"] == row["base_lang"]
        assert row["base_scores"] == [MAX_SCORE] * 7, "only flawless translations are corrupted"
        assert row["record_id"].startswith(row["base_record_id"] + "#synthetic-")
        assert row["translation"] != row["base_translation"]
        assert row["product_category"] == row["base_record_id"].split("_", 1)[1].rsplit("_", 2)[0]


def test_empty_output_is_still_a_valid_samples_frame(judged, wanted):
    result = RulesBackend(THRESHOLDS).synthesize(judged, wanted.clear(), seed=0)
    assert result.samples.height == 0 and result.report.height == 0
    Samples.validate(result.samples)


# --- graded severity: see test_synthesis_graded.py ----------------------------------------------------------


def test_thought_names_the_criterion(output):
    for row in output.samples.iter_rows(named=True):
        assert row["thought"].startswith(f"Criterion {row['criterion']} ({rules.CRITERIA[row['criterion']]})")


# --- report --------------------------------------------------------------------------------------------


def test_report_counts_made_and_unfilled(output, wanted):
    report = output.report
    assert report.columns == GROUP_KEYS + ["samples", "needed", "made", "unfilled", "why"]
    assert report.select(GROUP_KEYS).equals(wanted.select(GROUP_KEYS))
    made = Counter(output.samples.select(GROUP_KEYS).iter_rows())
    for row in report.iter_rows(named=True):
        key = (row["product_category"], row["criterion"], row["score_bucket"])
        assert row["made"] == made[key]
        assert 0 <= row["made"] <= row["needed"]
        assert row["unfilled"] == row["needed"] - row["made"]
        assert (row["why"] is None) == (row["unfilled"] == 0)
    # the categories with six flawless translations fill every group
    full = report.filter(pl.col("product_category").is_in(CATEGORIES))
    assert full["unfilled"].sum() == 0 and full.height == len(CATEGORIES) * len({(c, int(s)) for c, s in SMALL_GROUPS})


def test_report_explains_unfillable_groups(output):
    report = {(r["product_category"], r["criterion"], r["score_bucket"]): r for r in output.report.iter_rows(named=True)}
    no_flawless = report[("All_Beauty", 0, 1)]
    assert (no_flawless["made"], no_flawless["unfilled"]) == (0, MIN_SAMPLES - 1)
    assert no_flawless["why"] and "flawless" in no_flawless["why"]
    no_number = report[("Toys_and_Games", 4, 1)]
    assert (no_number["made"], no_number["unfilled"]) == (0, MIN_SAMPLES - 1)
    assert no_number["why"]
    # the same two bases can show a refusal: three different refusals (variants) fill the group
    refusal = report[("Toys_and_Games", 0, 1)]
    assert (refusal["made"], refusal["unfilled"], refusal["why"]) == (MIN_SAMPLES - 1, 0, None)


# --- determinism -----------------------------------------------------------------------------------------


def test_same_seed_gives_identical_output(judged, wanted, output):
    again = RulesBackend(THRESHOLDS).synthesize(judged.sample(fraction=1.0, shuffle=True, seed=3), wanted, seed=0)
    assert again.samples.equals(output.samples)
    assert again.report.equals(output.report)


def test_a_different_seed_gives_different_output(judged, wanted, output):
    other = RulesBackend(THRESHOLDS).synthesize(judged, wanted, seed=1)
    assert not other.samples.equals(output.samples)
    Samples.validate(other.samples)
    assert rows_outside_their_group(other.samples, wanted, THRESHOLDS).height == 0
    assert other.report.select("made").equals(output.report.select("made"))


# --- rows_outside_their_group --------------------------------------------------------------------------


def test_rows_outside_their_group_catches_mislabelled_rows(output, wanted, judged):
    synthetic = output.samples
    first = synthetic.filter(pl.col("score_bucket") < 4).row(0, named=True)  # moved to bucket 4 below, it leaves its group
    victim, criterion = first["sample_id"], first["criterion"]
    other = 5 if criterion != 5 else 0  # bucket 0 of criteria 0 and 5 is no wanted group
    wrong_scores = synthetic.with_columns(
        pl.when(pl.col("sample_id") == victim).then(pl.lit(scores_for(other, 0.0))).otherwise(pl.col("scores")).alias("scores")
    )
    assert rows_outside_their_group(wrong_scores, wanted, THRESHOLDS)["sample_id"].to_list() == [victim]
    wrong_bucket = synthetic.with_columns(
        pl.when(pl.col("sample_id") == victim).then(pl.col("scores").list.eval(pl.when(pl.element() < 5).then(4.9).otherwise(pl.element()))).otherwise(pl.col("scores")).alias("scores")
    )
    outside = rows_outside_their_group(wrong_bucket, wanted, THRESHOLDS)["sample_id"].to_list()
    assert victim in outside
    judged_rows = judged.filter(pl.col("target_model") == SIMPLE).head(2)
    assert rows_outside_their_group(judged_rows, wanted, THRESHOLDS).height == 2


# --- defects found -----------------------------------------------------------------------------------------


def test_criterion_2_repeats_whole_words():
    judged = samples_frame([
        sample("meta_Kitchen_1_0", "Nonstick Frying Pan 12 Inch", "Антипригарная сковорода 12 дюймов", scores_for(None), target_lang="ru-ru"),
        sample("meta_Kitchen_2_0", "Nonstick Frying Pan 12 Inch", "Антипригарная сковорода 12 дюймов", scores_for(2, 3.0), target_lang="ru-ru", model="model_b"),
    ])
    made = RulesBackend(THRESHOLDS).synthesize(judged, deficits(judged, 60), seed=0).samples
    base = "Антипригарная сковорода 12 дюймов".split()
    repeats = [t for t in made["translation"] if not any(f in t for f in perturbations.FILLERS["ru-ru"])]
    assert repeats
    for translation in repeats:  # bucket 3: two whole words, written twice in a row
        assert any(translation.split() == base[:i + 2] + base[i:i + 2] + base[i + 2:] for i in range(len(base) - 1)), translation


@pytest.mark.parametrize(
    "criterion, source, translation",
    [
        (2, "Lodge Cast Iron Skillet 10 Inch", "Чугунная сковорода Lodge 10 дюймов"),
        (1, "Lodge Cast Iron Skillet", "Lodge чугунная сковорода для жарки"),
    ],
    ids=["criterion2-repeat", "criterion1-untranslated-words"],
)
def test_one_corrupted_text_never_gets_two_labels(criterion, source, translation):
    judged = samples_frame([
        sample("meta_Kitchen_1_0", source, translation, scores_for(None), target_lang="ru-ru"),
        sample("meta_Kitchen_2_0", "Hamilton Beach Blender 40 oz", "Блендер 40 унций", scores_for(criterion, 1.5), target_lang="ru-ru"),
        sample("meta_Kitchen_3_0", "Hamilton Beach Blender 40 oz", "Блендер 40 унций", scores_for(criterion, 3.0), target_lang="ru-ru"),
    ])
    wanted = deficits(judged, 2)
    made = RulesBackend(THRESHOLDS).synthesize(judged, wanted, seed=0).samples
    assert made.height == 2
    labels = made.group_by("translation").agg(pl.col("label").n_unique().alias("labels"), pl.col("score_bucket").n_unique().alias("buckets"))
    assert labels.filter((pl.col("labels") > 1) | (pl.col("buckets") > 1)).height == 0, made.select("translation", "score_bucket", "label").rows()


def test_no_flawless_base_at_all_makes_nothing_and_says_why():
    judged = samples_frame([sample(f"meta_Kitchen_{i}_0", scores=scores_for(i % 6, 1.0)) for i in range(6)])
    result = RulesBackend(THRESHOLDS).synthesize(judged, deficits(judged, 3), seed=0)
    assert result.samples.height == 0
    Samples.validate(result.samples)
    assert set(result.report["why"]) == {"no flawless judged translation in this category to perturb"}
    assert result.report["unfilled"].to_list() == result.report["needed"].to_list()


def test_a_one_word_base_without_language_still_gives_what_it_can():
    rows = [sample("meta_Kitchen_1_0", "Mug", "杯", scores_for(None), target_lang=None)]
    rows += [sample(f"meta_Kitchen_{i + 2}_0", scores=scores_for(i % 6, 1.0 + i % 4)) for i in range(24)]
    judged = samples_frame(rows)
    wanted = deficits(judged, 3)
    result = RulesBackend(THRESHOLDS).synthesize(judged, wanted, seed=0)
    assert result.samples.height > 0 and rows_outside_their_group(result.samples, wanted, THRESHOLDS).is_empty()
    short = result.report.filter(pl.col("unfilled") > 0)
    assert short.height and short["why"].str.contains("flawless judged translations can show this criterion").all()
