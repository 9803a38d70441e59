"""The leak-free split (data contract, section 4): a title's side is a pure function of its normalized source and the seed."""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given, settings, strategies as st

from tqc_dagster.core.rubric import JUDGED, SYNTHETIC
from tqc_dagster.core.split import is_test_source, normalize_source, realized_test_share, shared_sources, split_samples
from tqc_dagster_tests.samples import sample, samples_frame

WORDS = ["Lodge", "Cast", "Iron", "Skillet", "10", "Inch", "Amazon", "Basics", "AA", "Batteries", "24", "Pack",
         "铸铁", "煎锅", "Чугунная", "сковорода", "USB-C", "Cable", "3.5mm", "Ｘ"]
WHITESPACE = [" ", "  ", "\t", "\u00a0", "\u3000", " \n "]

SETTINGS = settings(deadline=None, max_examples=40)


def fullwidth(text: str) -> str:
    """ASCII letters, digits and punctuation as their full-width forms (NFKC maps them back)."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


@st.composite
def title(draw) -> list[str]:
    return draw(st.lists(st.sampled_from(WORDS), min_size=1, max_size=6))


@st.composite
def variant(draw, words: list[str]) -> str:
    """The same title, differing only in case, NFKC width and whitespace."""
    out = []
    for word in words:
        form = draw(st.sampled_from(["same", "upper", "lower", "swapcase", "fullwidth"]))
        word = {"same": word, "upper": word.upper(), "lower": word.lower(), "swapcase": word.swapcase(), "fullwidth": fullwidth(word)}[form]
        out.append(word)
    lead, trail = draw(st.sampled_from(["", *WHITESPACE])), draw(st.sampled_from(["", *WHITESPACE]))
    return lead + "".join(w + (draw(st.sampled_from(WHITESPACE)) if i < len(out) - 1 else "") for i, w in enumerate(out)) + trail


@st.composite
def titles_with_variants(draw) -> list[tuple[str, list[str]]]:
    """Distinct titles (by normalized form), each with 1..4 surface variants."""
    bases = draw(st.lists(title(), min_size=1, max_size=25, unique_by=lambda ws: normalize_source(" ".join(ws))))
    return [(" ".join(ws), [draw(variant(ws)) for _ in range(draw(st.integers(1, 4)))]) for ws in bases]


def frame_of(sources: list[str], prefix: str = "Home_and_Kitchen", judge_version: str = "v1", model: str = "model_a", origin: str = JUDGED) -> pl.DataFrame:
    rows = [
        sample(f"meta_{prefix}_{i}_0", source=s, judge_version=judge_version, model=model, origin=origin,
               translation=f"译文 {i}")
        for i, s in enumerate(sources)
    ]
    return samples_frame(rows, validate=False)


def side_of(result, source_column: str = "source") -> dict[str, bool]:
    """normalized source -> is test, asserting a single side per normalized source."""
    sides: dict[str, set[bool]] = {}
    for frame, is_test in ((result.train, False), (result.test, True)):
        for source in frame[source_column].to_list():
            sides.setdefault(normalize_source(source), set()).add(is_test)
    assert all(len(s) == 1 for s in sides.values()), {k: v for k, v in sides.items() if len(v) > 1}
    return {k: next(iter(v)) for k, v in sides.items()}


EMPTY = samples_frame([], validate=False)


# --- normalization -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "a, b",
    [
        ("Lodge Cast Iron Skillet 10 Inch", "LODGE cast iron SKILLET 10 inch"),
        ("Lodge Cast Iron Skillet 10 Inch", "  Lodge\tCast  Iron\u00a0Skillet\n10 Inch "),
        ("Amazon Basics AA Batteries 24 Pack", "Ａｍａｚｏｎ Ｂａｓｉｃｓ ＡＡ Ｂａｔｔｅｒｉｅｓ ２４ Ｐａｃｋ"),
        ("Straße Kaffeebecher", "STRASSE KAFFEEBECHER"),
        ("Чугунная Сковорода 10 см", "чугунная  сковорода\u300010 СМ"),
        ("ｶﾀｶﾅ Mug", "カタカナ mug"),
    ],
)
def test_titles_differing_in_case_width_whitespace_normalize_alike(a, b):
    assert normalize_source(a) == normalize_source(b)


def test_greek_title_and_its_upper_case_land_on_one_side():
    """Case folding can undo an NFKC composition, so normalization must compose again after folding (NFKC_Casefold)."""
    title = "Αΐδα Κούπα"  # 'ΐ' (U+0390) has no precomposed upper case
    upper = title.upper()  # 'ΑΪ́ΔΑ ΚΟΎΠΑ', differs from the title only in case
    sides = [
        pl.DataFrame({"source": [title, upper]}).select(is_test_source(pl.col("source"), 0.5, seed))["source"].to_list()
        for seed in range(20)
    ]
    assert all(a == b for a, b in sides)
    assert normalize_source(title) == normalize_source(upper)


# --- no title on both sides ----------------------------------------------------------------------------


@SETTINGS
@given(titles=titles_with_variants(), test_ratio=st.floats(0.2, 0.8), seed=st.integers(0, 2**31))
def test_no_normalized_source_on_both_sides(titles, test_ratio, seed):
    sources = [v for _, variants in titles for v in variants]
    judged = frame_of(sources)
    result = split_samples(judged, EMPTY, test_ratio, seed)

    assert result.train.height + result.test.height == judged.height
    assert shared_sources(result.train, result.test).height == 0
    sides = side_of(result)
    assert len(sides) == len(titles)
    assert set(result.train.columns) == set(judged.columns) and result.test.columns == judged.columns
    assert result.synthetic_dropped == 0


@SETTINGS
@given(titles=titles_with_variants(), seed=st.integers(0, 2**31))
def test_is_test_source_is_the_same_for_every_variant(titles, seed):
    sources = [v for _, variants in titles for v in variants]
    flags = pl.DataFrame({"source": sources}).select(is_test_source(pl.col("source"), 0.5, seed))["source"].to_list()
    by_title: dict[str, set[bool]] = {}
    for source, flag in zip(sources, flags):
        by_title.setdefault(normalize_source(source), set()).add(flag)
    assert all(len(v) == 1 for v in by_title.values())


def test_shared_sources_finds_a_leak():
    train = frame_of(["Lodge Cast Iron Skillet 10 Inch", "Amazon Basics AA Batteries 24 Pack"])
    test = frame_of(["LODGE  cast iron skillet 10 inch"], prefix="Electronics")
    leaked = shared_sources(train, test)
    assert leaked["normalized_source"].to_list() == ["lodge cast iron skillet 10 inch"]


# --- determinism -----------------------------------------------------------------------------------------


@SETTINGS
@given(titles=titles_with_variants(), test_ratio=st.floats(0.05, 0.95), seed=st.integers(0, 2**31))
def test_same_input_and_seed_give_identical_frames(titles, test_ratio, seed):
    sources = [v for _, variants in titles for v in variants]
    judged = frame_of(sources)
    first = split_samples(judged, EMPTY, test_ratio, seed)
    second = split_samples(judged.clone(), EMPTY, test_ratio, seed)
    assert first.train.equals(second.train)
    assert first.test.equals(second.test)
    assert first.synthetic_dropped == second.synthetic_dropped


@SETTINGS
@given(seeds=st.lists(st.integers(0, 2**31), min_size=2, max_size=2, unique=True))
def test_a_different_seed_changes_the_assignment(seeds):
    judged = frame_of([f"Amazon Basics Product Number {i}" for i in range(200)])
    first, second = (split_samples(judged, EMPTY, 0.5, seed) for seed in seeds)
    # 200 titles at ratio 0.5: the chance that two seeds give the same test set is 2**-200
    assert set(first.test["source"]) != set(second.test["source"])


# --- a title's side does not depend on the frame it is in -----------------------------------------------


@SETTINGS
@given(titles=titles_with_variants(), data=st.data(), test_ratio=st.floats(0.2, 0.8), seed=st.integers(0, 2**31))
def test_side_of_a_title_is_independent_of_the_frame(titles, data, test_ratio, seed):
    in_a = data.draw(st.lists(st.booleans(), min_size=len(titles), max_size=len(titles)))
    in_b = data.draw(st.lists(st.booleans(), min_size=len(titles), max_size=len(titles)))
    # frame A: first variants of some titles; frame B (another judge version, model and partition): last variants
    a = [variants[0] for (_, variants), keep in zip(titles, in_a) if keep] + ["Only In Frame A Widget"]
    b = [variants[-1] for (_, variants), keep in zip(titles, in_b) if keep] + ["Only In Frame B Gadget 7"]
    side_a = side_of(split_samples(frame_of(a), EMPTY, test_ratio, seed))
    side_b = side_of(split_samples(frame_of(b, prefix="Electronics", judge_version="v2", model="model_b"), EMPTY, test_ratio, seed))
    both = side_a.keys() & side_b.keys()
    assert both == {normalize_source(variants[0]) for (_, variants), x, y in zip(titles, in_a, in_b) if x and y}
    assert {t: side_a[t] for t in both} == {t: side_b[t] for t in both}


def test_side_does_not_depend_on_frame_composition_or_order():
    titles = [f"Lodge Cast Iron Skillet {i} Inch" for i in range(300)]
    whole = side_of(split_samples(frame_of(titles), EMPTY, 0.3, 11))
    halves = {}
    for part in (titles[::2], list(reversed(titles[1::2]))):
        halves |= side_of(split_samples(frame_of(part), EMPTY, 0.3, 11))
    assert halves == whole


# --- synthetic samples -----------------------------------------------------------------------------------


@SETTINGS
@given(titles=titles_with_variants(), data=st.data(), test_ratio=st.floats(0.2, 0.8), seed=st.integers(0, 2**31))
def test_synthetic_samples_never_enter_test_and_leaking_ones_are_dropped(titles, data, test_ratio, seed):
    judged = frame_of([variants[0] for _, variants in titles])
    # synthetic rows reuse a (differently written) judged title, or have a title of their own
    synthetic_sources = [data.draw(st.sampled_from(variants)) for _, variants in titles] + [
        f"Synthetic Only Title {i}" for i in range(data.draw(st.integers(0, 5)))
    ]
    synthetic = frame_of(synthetic_sources, prefix="All_Beauty", origin=SYNTHETIC)
    result = split_samples(judged, synthetic, test_ratio, seed)

    test_titles = {normalize_source(s) for s in result.test["source"]}
    flags = synthetic.select(is_test_source(pl.col("source"), test_ratio, seed))["source"].to_list()
    leaking = [s for s, flag in zip(synthetic["source"], flags) if flag]

    assert result.test.filter(pl.col("origin") != JUDGED).height == 0
    assert result.synthetic_dropped == len(leaking)
    assert result.train.filter(pl.col("origin") == SYNTHETIC).height == synthetic.height - len(leaking)
    # every synthetic row whose title is a judged test title is dropped
    for source in synthetic["source"]:
        if normalize_source(source) in test_titles:
            assert source in leaking
    kept_synthetic = result.train.filter(pl.col("origin") == SYNTHETIC)
    assert not ({normalize_source(s) for s in kept_synthetic["source"]} & test_titles)
    assert shared_sources(result.train, result.test).height == 0


def test_synthetic_copy_of_a_test_title_is_dropped_and_counted():
    titles = [f"Amazon Basics AA Batteries {i} Pack" for i in range(400)]
    judged = frame_of(titles)
    result = split_samples(judged, EMPTY, 0.1, 3)
    test_title = result.test["source"][0]
    train_title = result.train["source"][0]
    synthetic = frame_of([test_title.upper(), "  " + fullwidth(test_title), train_title.lower()], prefix="All_Beauty", origin=SYNTHETIC)

    with_synthetic = split_samples(judged, synthetic, 0.1, 3)

    assert with_synthetic.synthetic_dropped == 2
    assert with_synthetic.test.equals(result.test)
    kept = with_synthetic.train.filter(pl.col("origin") == SYNTHETIC)
    assert kept["source"].to_list() == [train_title.lower()]


def test_synthetic_rows_in_the_judged_argument_do_not_reach_test():
    judged = frame_of([f"Lodge Cast Iron Skillet {i} Inch" for i in range(200)])
    synthetic = frame_of([f"Lodge Cast Iron Skillet {i} Inch" for i in range(200)], prefix="All_Beauty", origin=SYNTHETIC)
    result = split_samples(pl.concat([judged, synthetic]), synthetic, 0.5, 0)
    assert result.test["origin"].unique().to_list() == [JUDGED]


# --- realized test share ---------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
def test_realized_test_share_is_close_to_test_ratio_at_scale(seed):
    n = 20_000
    judged = pl.DataFrame(
        {
            "sample_id": [f"{i:08d}" for i in range(n)],
            "judge_version": ["v1"] * n,
            "source": [f"Amazon Basics Product {i} Pack of {i % 97}" for i in range(n)],
            "origin": [JUDGED] * n,
        }
    )
    result = split_samples(judged, judged.clear(), 0.1, seed)
    assert result.train.height + result.test.height == n
    share = realized_test_share(result.train, result.test, ["judge_version"])
    assert share["samples"].to_list() == [n]
    assert abs(share["test_share"].item() - 0.1) <= 0.01
    assert abs(result.test.height / n - 0.1) <= 0.01


def test_realized_test_share_ignores_synthetic_rows():
    judged = frame_of([f"Lodge Cast Iron Skillet {i} Inch" for i in range(1000)])
    synthetic = frame_of([f"Synthetic Skillet {i}" for i in range(1000)], prefix="All_Beauty", origin=SYNTHETIC)
    result = split_samples(judged, synthetic, 0.2, 5)
    share = realized_test_share(result.train, result.test, ["judge_version"])
    assert share["samples"].item() == 1000
    assert share["test_share"].item() == round(result.test.height / 1000, 4)
