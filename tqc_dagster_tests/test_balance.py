"""Balancing the training set (data contract, section 4): per balance group as many positives as negatives."""

from __future__ import annotations

from collections import Counter

import polars as pl
import pytest
from hypothesis import given, settings, strategies as st

from tqc_dagster.core.balance import NEGATIVE, POSITIVE, balance, balance_group, balance_violations, over_synthetic_share, plan
from tqc_dagster.core.judgments import Thresholds
from tqc_dagster.core.rubric import JUDGED, SYNTHETIC
from tqc_dagster_tests.samples import samples_frame, sample, scores_for

SETTINGS = settings(deadline=None, max_examples=60)

# (criterion, label) -> lowest scores that give that label with the default thresholds (simple < 3, complex < 4)
SCORES = {
    ("simple", NEGATIVE): [0.0, 0.5, 1.0, 1.5, 2.0, 2.5],
    ("simple", POSITIVE): [3.0, 3.5, 4.0, 4.5],
    ("complex", NEGATIVE): [0.0, 1.0, 2.5, 3.0, 3.5],
    ("complex", POSITIVE): [4.0, 4.5],
}
# a draw: (criterion 0..6 or None for flawless, label, score index, model, target_lang)
ITEM = st.tuples(
    st.sampled_from([0, 1, 2, 3, 4, 5, 6, None]),
    st.sampled_from([NEGATIVE, POSITIVE]),
    st.integers(0, 5),
    st.sampled_from(["model_a", "model_b"]),
    st.sampled_from(["zh-cn", "ru-ru"]),
)


def train_frame(items) -> pl.DataFrame:
    rows = []
    for i, (criterion, label, k, model, lang) in enumerate(items):
        if criterion is None:  # flawless: a positive of the complex model, whatever label was drawn
            scores = scores_for(None)
        else:
            options = SCORES[("complex" if criterion == 6 else "simple", label)]
            scores = scores_for(criterion, options[k % len(options)])
        category = ["All_Beauty", "Home_and_Kitchen", "Electronics"][i % 3]
        rows.append(sample(f"meta_{category}_{i}_0", source=f"Lodge Cast Iron Skillet {i} Inch", scores=scores, model=model, target_lang=lang))
    return samples_frame(rows, validate=False)


def tally(frame: pl.DataFrame) -> dict[str, Counter]:
    out: dict[str, Counter] = {}
    for group, label in frame.select(balance_group(), "label").iter_rows():
        out.setdefault(group, Counter())[label] += 1
    return out


def expected_groups(train: pl.DataFrame) -> set[str]:
    return set(train.select(balance_group())["balance_group"].to_list())


def test_balance_groups_are_each_simple_criterion_and_complex_as_one():
    train = train_frame([(c, NEGATIVE, 0, "model_a", "zh-cn") for c in [0, 1, 2, 3, 4, 5, 6, None]])
    groups = train.select(balance_group())["balance_group"].to_list()
    assert Counter(groups) == Counter([f"simple/{c}" for c in range(6)] + ["complex", "complex"])


@SETTINGS
@given(items=st.lists(ITEM, max_size=80), seed=st.integers(0, 2**31), cap=st.none() | st.integers(1, 6))
def test_positives_match_negatives_per_group(items, seed, cap):
    train = train_frame(items)
    result = balance(train, seed, cap)
    kept, available = tally(result.balanced), tally(train)

    for group, counts in available.items():
        negatives_kept = kept.get(group, Counter())[NEGATIVE]
        positives_kept = kept.get(group, Counter())[POSITIVE]
        negatives_expected = counts[NEGATIVE] if cap is None else min(counts[NEGATIVE], cap)
        assert negatives_kept == negatives_expected, group
        assert positives_kept == min(negatives_kept, counts[POSITIVE]), group
    assert set(kept) <= set(available)

    # the balanced rows are rows of train, once each, unchanged, sorted by sample_id
    assert result.balanced.columns == train.columns
    assert result.balanced["sample_id"].is_unique().all()
    assert result.balanced.join(train, on=train.columns, how="anti", nulls_equal=True).height == 0
    assert result.balanced["sample_id"].to_list() == sorted(result.balanced["sample_id"].to_list())
    assert balance_violations(result.balanced, train).height == 0


@SETTINGS
@given(items=st.lists(ITEM, max_size=80), seed=st.integers(0, 2**31), cap=st.none() | st.integers(1, 6))
def test_report_counts_and_shortfall(items, seed, cap):
    train = train_frame(items)
    result = balance(train, seed, cap)
    report = {row["balance_group"]: row for row in result.report.to_dicts()}
    available, kept = tally(train), tally(result.balanced)

    assert set(report) == set(available)
    assert result.report["balance_group"].to_list() == sorted(report)
    for group, row in report.items():
        negatives_kept = kept.get(group, Counter())[NEGATIVE]
        positives_kept = kept.get(group, Counter())[POSITIVE]
        assert row["negatives_available"] == available[group][NEGATIVE]
        assert row["positives_available"] == available[group][POSITIVE]
        assert row["negatives_kept"] == negatives_kept
        assert row["positives_kept"] == positives_kept
        assert row["shortfall"] == max(0, negatives_kept - available[group][POSITIVE])
        assert row["shortfall"] >= 0


def test_report_shortfall_when_positives_run_out():
    items = [(1, NEGATIVE, i, "model_a", "zh-cn") for i in range(5)] + [(1, POSITIVE, i, "model_b", "ru-ru") for i in range(2)]
    items += [(6, NEGATIVE, 0, "model_a", "zh-cn")] * 3 + [(None, POSITIVE, 0, "model_a", "zh-cn")] * 10
    train = train_frame(items)
    result = balance(train, seed=0)
    report = {row["balance_group"]: row for row in result.report.to_dicts()}
    assert report["simple/1"] == {
        "balance_group": "simple/1", "negatives_available": 5, "positives_available": 2,
        "negatives_kept": 5, "positives_kept": 2, "shortfall": 3,
        "synthetic_available": 0, "synthetic_kept": 0, "synthetic_share": 0.0,
    }
    assert report["complex"] == {
        "balance_group": "complex", "negatives_available": 3, "positives_available": 10,
        "negatives_kept": 3, "positives_kept": 3, "shortfall": 0,
        "synthetic_available": 0, "synthetic_kept": 0, "synthetic_share": 0.0,
    }
    # a group without negatives keeps nothing; a group without positives keeps its negatives
    only_positives = train_frame([(2, POSITIVE, i, "model_a", "zh-cn") for i in range(4)] + [(3, NEGATIVE, 0, "model_a", "zh-cn")])
    result = balance(only_positives, seed=0)
    report = {row["balance_group"]: row for row in result.report.to_dicts()}
    assert report["simple/2"]["positives_kept"] == 0 and report["simple/2"]["shortfall"] == 0
    assert report["simple/3"]["negatives_kept"] == 1 and report["simple/3"]["shortfall"] == 1
    assert balance_violations(result.balanced, only_positives).height == 0


def test_max_per_category_caps_negatives_and_positives_follow():
    items = [(0, NEGATIVE, i, "model_a", "zh-cn") for i in range(20)] + [(0, POSITIVE, i, "model_a", "zh-cn") for i in range(30)]
    train = train_frame(items)
    result = balance(train, seed=4, max_per_category=7)
    assert tally(result.balanced)["simple/0"] == Counter({NEGATIVE: 7, POSITIVE: 7})
    # the capped negatives are themselves a seeded draw
    other = balance(train, seed=5, max_per_category=7)
    negatives = lambda frame: set(frame.filter(pl.col("label") == NEGATIVE)["sample_id"])  # noqa: E731
    assert negatives(result.balanced) != negatives(other.balanced)


# --- determinism -----------------------------------------------------------------------------------------


@SETTINGS
@given(items=st.lists(ITEM, max_size=60), seed=st.integers(0, 2**31), cap=st.none() | st.integers(1, 6))
def test_same_seed_gives_identical_output(items, seed, cap):
    train = train_frame(items)
    first, second = balance(train, seed, cap), balance(train.sample(fraction=1.0, shuffle=True, seed=1), seed, cap)
    assert first.balanced.equals(second.balanced)
    assert first.report.equals(second.report)


@pytest.mark.parametrize("group", [3, 6])
def test_a_different_seed_draws_different_positives_when_there_is_a_choice(group):
    items = [(group, NEGATIVE, i, "model_a", "zh-cn") for i in range(5)] + [(group, POSITIVE, i, "model_b", "zh-cn") for i in range(50)]
    train = train_frame(items)
    drawn = [set(balance(train, seed).balanced.filter(pl.col("label") == POSITIVE)["sample_id"]) for seed in range(4)]
    assert all(len(d) == 5 for d in drawn)
    # 5 of 50 positives: two seeds drawing the same five has probability 1 / C(50, 5) ~ 5e-7
    assert len({frozenset(d) for d in drawn}) == 4
    # and the negatives, fewer than no cap, are all kept whatever the seed
    assert {frozenset(balance(train, seed).balanced.filter(pl.col("label") == NEGATIVE)["sample_id"]) for seed in range(4)} == {
        frozenset(train.filter(pl.col("label") == NEGATIVE)["sample_id"])
    }


@SETTINGS
@given(seeds=st.lists(st.integers(0, 2**31), min_size=2, max_size=2, unique=True))
def test_draws_over_seeds_cover_the_positives(seeds):
    items = [(2, NEGATIVE, 0, "model_a", "zh-cn")] * 3 + [(2, POSITIVE, i, "model_a", "zh-cn") for i in range(40)]
    train = train_frame(items)
    first, second = (set(balance(train, s).balanced.filter(pl.col("label") == POSITIVE)["sample_id"]) for s in seeds)
    assert first != second  # 1 / C(40, 3) ~ 1e-4 chance of a tie per pair


# --- balance_violations on tampered frames ---------------------------------------------------------------


def mixed_train() -> pl.DataFrame:
    items = []
    for c in [0, 2, 4, 6]:
        items += [(c, NEGATIVE, i, "model_a", "zh-cn") for i in range(4)]
        items += [(c, POSITIVE, i, "model_b", "ru-ru") for i in range(9)]
    items += [(5, NEGATIVE, i, "model_a", "zh-cn") for i in range(6)] + [(5, POSITIVE, 0, "model_a", "zh-cn")]
    return train_frame(items)


def test_balance_violations_empty_on_balance_output():
    train = mixed_train()
    for seed in range(3):
        for cap in (None, 2):
            assert balance_violations(balance(train, seed, cap).balanced, train).height == 0


def test_balance_violations_flag_a_dropped_positive():
    train = mixed_train()
    balanced = balance(train, 0).balanced
    drop = balanced.filter((pl.col("criterion") == 2) & (pl.col("label") == POSITIVE))["sample_id"][0]
    tampered = balanced.filter(pl.col("sample_id") != drop)
    violations = balance_violations(tampered, train)
    assert violations["balance_group"].to_list() == ["simple/2"]
    row = violations.row(0, named=True)
    assert (row["negatives"], row["positives"]) == (4, 3)


def test_balance_violations_flag_an_extra_positive():
    train = mixed_train()
    balanced = balance(train, 0).balanced
    extra = train.filter((pl.col("target_model") == "complex") & (pl.col("label") == POSITIVE)).join(balanced, on="sample_id", how="anti").head(1)
    violations = balance_violations(pl.concat([balanced, extra]), train)
    assert violations["balance_group"].to_list() == ["complex"]


def test_balance_violations_flag_unbalanced_training_set():
    train = mixed_train()
    violations = balance_violations(train, train)  # the raw train set is not balanced
    assert set(violations["balance_group"]) == {"simple/0", "simple/2", "simple/4", "complex"}


def test_thresholds_decide_which_rows_are_negative():
    # with a stricter simple threshold, a 3.5 on criterion 0 becomes a negative that needs a positive
    rows = [sample(f"meta_All_Beauty_{i}_0", scores=scores_for(0, 3.5)) for i in range(3)] + [
        sample(f"meta_All_Beauty_{i + 10}_0", scores=scores_for(0, 4.5)) for i in range(5)
    ]
    train = samples_frame(rows, thresholds=Thresholds(simple=4.0))
    result = balance(train, seed=0)
    assert tally(result.balanced)["simple/0"] == Counter({NEGATIVE: 3, POSITIVE: 3})


# --- the cap on the synthetic share ----------------------------------------------------------------------

CATEGORIES = ["All_Beauty", "Home_and_Kitchen", "Electronics"]
# a draw with an origin: (criterion 0..5, label, score index, synthetic?)
MIXED_ITEM = st.tuples(st.integers(0, 5), st.sampled_from([NEGATIVE, POSITIVE]), st.integers(0, 5), st.booleans())


def mixed_frame(items) -> pl.DataFrame:
    rows = []
    for i, (criterion, label, k, synthetic) in enumerate(items):
        options = SCORES[("simple", label)]
        category = CATEGORIES[i % 3]
        rows.append(sample(f"meta_{category}_{i}_0", source=f"Lodge Cast Iron Skillet {i} Inch", scores=scores_for(criterion, options[k % len(options)]),
                           translation=f"Lodge 铸铁煎锅 {i} 英寸", origin=SYNTHETIC if synthetic else JUDGED))
    return samples_frame(rows, validate=False)


@SETTINGS
@given(items=st.lists(MIXED_ITEM, max_size=120), seed=st.integers(0, 2**31), share=st.sampled_from([0.1, 0.3, 0.5, 0.9]), cap=st.none() | st.integers(1, 8))
def test_the_synthetic_share_of_every_group_stays_within_the_cap(items, seed, share, cap):
    train = mixed_frame(items)
    result = balance(train, seed, cap, share)
    kept = result.balanced
    assert over_synthetic_share(kept, share).is_empty()
    assert balance_violations(kept, train, share).is_empty()
    for row in result.report.iter_rows(named=True):
        assert row["synthetic_kept"] <= share * (row["negatives_kept"] + row["positives_kept"]) + 1e-9
        assert row["positives_kept"] <= row["negatives_kept"]
    # judged negatives are never dropped for the cap (only max_per_category limits them)
    judged_negatives = train.filter((pl.col("origin") == JUDGED) & (pl.col("label") == NEGATIVE)).select(balance_group()).to_series().value_counts()
    kept_judged = kept.filter((pl.col("origin") == JUDGED) & (pl.col("label") == NEGATIVE)).select(balance_group()).to_series().value_counts()
    for group, available in judged_negatives.iter_rows():
        got = dict(kept_judged.iter_rows()).get(group, 0)
        assert got == (available if cap is None else min(available, cap)), group
    # no cap: every row the old rule keeps
    assert balance(train, seed, cap, None).report.select("negatives_kept").equals(
        balance(train, seed, cap, 1.0).report.select("negatives_kept"))


def test_plan_keeps_judged_rows_and_as_much_synthetic_as_the_share_allows():
    # 10 judged negatives, 90 synthetic ones, 5 judged positives, 95 synthetic: 30 % synthetic at most
    negatives, positives = plan(10, 90, 5, 95, None, 0.3)
    synthetic = (negatives - 10) + (positives - 5)
    assert positives == negatives and synthetic <= 0.3 * (negatives + positives)
    assert plan(10, 90, 5, 95, None, 0.3 + 0.05)[0] > negatives  # a larger share keeps more
    assert plan(10, 90, 5, 95, None, None) == (100, 100)
    assert plan(10, 90, 5, 95, 12, None) == (12, 12)
    # only synthetic positives could balance the judged negatives: the share lets a few in, the rest is shortfall
    assert plan(10, 0, 0, 50, None, 0.3) == (10, 4)  # 4 / 14 <= 0.3 < 5 / 15
    assert plan(10, 0, 0, 50, None, 0.0) == (10, 0)


def test_the_cap_thins_every_rare_group_evenly():
    # 40 judged negatives of criterion 1; synthetic negatives: 30 in each of 3 categories (one synthesis group each)
    items = [(1, NEGATIVE, i, False) for i in range(40)] + [(1, NEGATIVE, i, True) for i in range(90)] + [(1, POSITIVE, i, False) for i in range(200)]
    train = mixed_frame(items)
    result = balance(train, seed=3, max_synthetic_share=0.1)
    synthetic = result.balanced.filter(pl.col("origin") == SYNTHETIC)
    assert synthetic.height > 0
    per_group = synthetic.group_by("product_category", "score_bucket").len()["len"].to_list()
    expected_groups = train.filter(pl.col("origin") == SYNTHETIC).select("product_category", "score_bucket").unique().height
    assert len(per_group) == min(expected_groups, synthetic.height) and max(per_group) - min(per_group) <= 1
