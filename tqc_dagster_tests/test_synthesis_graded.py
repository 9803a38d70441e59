"""Graded severity in the `rules` backend: every (simple criterion, score bucket) has its own family of distinct
texts from the same flawless bases; the severity shows in the text, the thought names it, the scores put the
sample in its group, and no text serves two groups."""

from __future__ import annotations

import math
import re

import polars as pl
import pytest

from tqc_dagster.core.judgments import Thresholds
from tqc_dagster.core.rubric import CRITERIA, MAX_SCORE, SIMPLE_CRITERIA
from tqc_dagster.core.synthesis import rows_outside_their_group
from tqc_dagster.core.synthesis import perturbations as p
from tqc_dagster.core.synthesis.format_damage import WRAPS
from tqc_dagster.core.synthesis.perturbation_frame import LATIN_WORD, NUMBER
from tqc_dagster.core.synthesis.rules import RulesBackend
from tqc_dagster_tests.samples import sample, samples_frame, scores_for

THRESHOLDS = Thresholds()
CATEGORY = "Home_and_Kitchen"
NEEDED = 8
# Flawless bases with numbers, English words missing from the translation and several target-language words.
BASES = [
    ("Lodge Cast Iron Skillet 10 Inch", "Lodge 铸铁煎锅 10 英寸", "zh-cn"),
    ("Hamilton Beach Glass Blender 40 oz", "汉美驰 玻璃 搅拌机 40 盎司", "zh-cn"),
    ("Pyrex Glass Measuring Cup 2 Cup Set", "Pyrex 玻璃量杯 2 杯 套装", "zh-cn"),
    ("OXO Good Grips Salad Spinner 6.22 Quart", "Сушилка для салата OXO Good Grips 6.22 л", "ru-ru"),
    ("Rubbermaid Food Storage Containers 24 Piece", "Контейнеры для хранения продуктов Rubbermaid 24 шт", "ru-ru"),
    ("Zwilling Chef Knife 8 Inch Stainless Steel", "Поварской нож Zwilling 8 дюймов из нержавеющей стали", "ru-ru"),
]
BUCKETS = (0, 1, 2, 3, 4)
GROUPS = [(c, b) for c in SIMPLE_CRITERIA for b in BUCKETS]


@pytest.fixture(scope="module")
def judged() -> pl.DataFrame:
    rows = [sample(f"meta_{CATEGORY}_{i}_0", s, t, scores_for(None), target_lang=lang) for i, (s, t, lang) in enumerate(BASES)]
    # one judged sample per group, so the flawed texts the judge saw are there too
    rows += [sample(f"meta_{CATEGORY}_{100 + k}_1", BASES[0][0], BASES[0][1] + f" {k}", scores_for(c, b + 0.5)) for k, (c, b) in enumerate(GROUPS)]
    return samples_frame(rows)


@pytest.fixture(scope="module")
def wanted() -> pl.DataFrame:
    return pl.DataFrame(
        [(CATEGORY, c, b, 1, NEEDED) for c, b in GROUPS],
        schema={"product_category": pl.String, "criterion": pl.Int64, "score_bucket": pl.Int64, "samples": pl.Int64, "needed": pl.Int64},
        orient="row",
    )


@pytest.fixture(scope="module")
def made(judged, wanted) -> pl.DataFrame:
    output = RulesBackend(THRESHOLDS).synthesize(judged, wanted, seed=0)
    assert output.report.filter(pl.col("unfilled") > 0).is_empty(), output.report.filter(pl.col("unfilled") > 0).to_dicts()
    base = {source: translation for source, translation, _ in BASES}
    return output.samples.with_columns(pl.col("source").replace_strict(base).alias("base"))


def rows(made: pl.DataFrame, criterion: int, bucket: int) -> list[dict]:
    found = made.filter((pl.col("criterion") == criterion) & (pl.col("score_bucket") == bucket)).to_dicts()
    assert len(found) == NEEDED, (criterion, bucket, len(found))
    return found


def squeeze(text: str) -> str:
    return re.sub(r"\s+", "", text)


def tokens(text: str) -> list[str]:
    return [t.strip() for t in re.findall(r"\s*(?:[\u4e00-\u9fff]{1,2}|[^\s\u4e00-\u9fff]+)", text)]


def said_count(thought: str, pattern: str) -> int:
    found = re.search(pattern, thought)
    assert found, (pattern, thought)
    return int(found.group(1))


# --- every group -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("criterion, bucket", GROUPS)
def test_each_group_gets_distinct_texts_whose_scores_put_them_in_it(made, wanted, criterion, bucket):
    group = rows(made, criterion, bucket)
    assert len({(r["source"], r["translation"]) for r in group}) == NEEDED
    for row in group:
        assert row["translation"] != row["base"]
        assert [i for i, s in enumerate(row["scores"]) if s < MAX_SCORE] == [criterion]
        assert bucket <= row["scores"][criterion] < bucket + 1
        assert row["thought"].startswith(f"Criterion {criterion} ({CRITERIA[criterion]}): the translation ")
    assert rows_outside_their_group(made.drop("base"), wanted, THRESHOLDS).height == 0


def test_one_text_serves_one_group_and_is_never_a_judged_text(made, judged):
    assert made.select("source", "translation").is_unique().all()
    assert made.join(judged, on=["source", "translation"], how="semi").is_empty()


def test_the_ladders_grow_with_severity():
    """A lower bucket is a strictly worse defect: more words withheld, left in English, added, symbols, or a larger factor."""
    for ladder in (p.ADDED_WORDS, p.ADDED_SYMBOLS):
        assert [ladder[b] for b in (4, 3, 2, 1, 0)] == sorted({ladder[b] for b in BUCKETS})
    assert p.WITHHELD[4] < p.WITHHELD[3] < 3  # bucket 2 withholds at least 3, bucket 1 all but one, bucket 0 all
    assert p.ENGLISH_WORDS[4] < p.ENGLISH_WORDS[3] < p.ENGLISH_WORDS[2]
    bands = [p.QUANTITY_BANDS[b] for b in (4, 3, 2, 1, 0)]
    assert all(high == next_low for (_, high), (next_low, _) in zip(bands, bands[1:]))
    for bucket, factors in p.QUANTITY_FACTORS.items():
        low, high = p.QUANTITY_BANDS[bucket]
        assert all(low < max(f, 1 / f) <= high for f in factors), bucket


# --- criterion 0: refusal, by how much is withheld --------------------------------------------------------


@pytest.mark.parametrize("bucket", (4, 3, 2))
def test_criterion_0_withholds_a_graded_run_of_words(made, bucket):
    for row in rows(made, 0, bucket):
        notes = [n for n in p.REFUSAL_NOTES[row["target_lang"]] if n in row["translation"]]
        assert len(notes) == 1, row["translation"]
        n = len(tokens(row["base"]))
        k = said_count(row["thought"], r"withholds (\d+) of its \d+ words")
        assert k == (p.WITHHELD[bucket] if bucket in p.WITHHELD else max(3, math.ceil(n / 2)))
        assert f"of its {n} words" in row["thought"] and f"'{notes[0]}'" in row["thought"]
        withheld = re.search(r"words \('(.*?)'\) behind", row["thought"]).group(1)
        assert squeeze(row["translation"].replace(notes[0], withheld)) == squeeze(row["base"])  # only that run is gone
        assert n - len(tokens(row["translation"].replace(notes[0], ""))) == k


def test_criterion_0_bucket_1_keeps_one_word(made):
    for row in rows(made, 0, 1):
        notes = [n for n in p.REFUSAL_NOTES[row["target_lang"]] if n in row["translation"]]
        kept = row["translation"].replace(notes[0], "").strip()
        assert len(notes) == 1 and kept in row["base"] and len(tokens(kept)) == 1, row["translation"]
        assert f"translates only 1 of its {len(tokens(row['base']))} words ('{kept}')" in row["thought"]


def test_criterion_0_bucket_0_refuses_everything(made):
    for row in rows(made, 0, 0):
        lang = row["target_lang"]
        templates = p.REFUSALS[lang] + [t.split("{w}")[0] for t in p.QUOTED_REFUSALS[lang]]
        assert any(row["translation"].startswith(t) for t in templates), row["translation"]
        assert not set(tokens(row["base"])) - set(tokens(row["source"])) & set(tokens(row["translation"]))  # no translated word
        assert "refuses the whole title" in row["thought"] and row["translation"] in row["thought"]


# --- criterion 1: words left in English, by how many ------------------------------------------------------


@pytest.mark.parametrize("bucket", (4, 3, 2))
def test_criterion_1_leaves_a_graded_number_of_words_in_english(made, bucket):
    word = re.compile(LATIN_WORD)
    for row in rows(made, 1, bucket):
        added = [w for w in word.findall(row["translation"]) if w not in word.findall(row["base"])]
        assert len(added) == p.ENGLISH_WORDS[bucket] and set(added) <= set(word.findall(row["source"])), row["translation"]
        english = " ".join(added)
        assert squeeze(row["translation"].replace(english, "")) == squeeze(row["base"])
        assert f"leaves {len(added)} word" in row["thought"] and f"'{english}'" in row["thought"]


@pytest.mark.parametrize("bucket, native", [(1, 2), (0, 1)])
def test_criterion_1_worst_buckets_keep_the_english_source(made, bucket, native):
    for row in rows(made, 1, bucket):
        if row["translation"] == row["source"]:
            assert bucket == 0 and "word for word" in row["thought"]
            continue
        kept = re.search(r"only \d+ words? \('(.*?)'\)", row["thought"]).group(1)
        assert squeeze(row["translation"].replace(kept, "")) == squeeze(row["source"])  # every source word, untranslated
        assert set(tokens(kept)) <= set(tokens(row["base"])) and len(tokens(kept)) <= native and f"only {native} word" in row["thought"]


# --- criterion 2: words added, by how many ------------------------------------------------------------------


@pytest.mark.parametrize("bucket", BUCKETS)
def test_criterion_2_adds_a_graded_number_of_words(made, bucket):
    count, kinds = p.ADDED_WORDS[bucket], set()
    for row in rows(made, 2, bucket):
        assert said_count(row["thought"], r"adds (\d+) words?") == count
        quoted = re.search(r"product \('(.*?)'\)|repeating '(.*?)' twice", row["thought"])
        added = quoted.group(1) or quoted.group(2)
        if "twice in a row" in row["thought"]:
            kinds.add("repeat")
            assert squeeze(row["translation"]) != squeeze(row["base"]) and squeeze(row["translation"]).replace(squeeze(added) * 2, squeeze(added)) == squeeze(row["base"])
        else:
            kinds.add("filler")
            fillers = added.split()
            assert len(fillers) == count and set(fillers) <= set(p.FILLERS[row["target_lang"]])
            assert squeeze(row["translation"].replace(added, "")) == squeeze(row["base"])
    assert kinds, bucket


# --- criterion 3: symbols inserted, by how many --------------------------------------------------------------


@pytest.mark.parametrize("bucket", BUCKETS)
def test_criterion_3_inserts_a_graded_number_of_symbols(made, bucket):
    count = p.ADDED_SYMBOLS[bucket]
    for row in rows(made, 3, bucket):
        inserted = [c for c in row["translation"] if c in p.SYMBOLS]
        assert len(inserted) == count, row["translation"]
        assert "".join(c for c in row["translation"] if c not in p.SYMBOLS) == row["base"]  # nothing else changed
        assert f"has {count} abnormal symbol" in row["thought"] and all(f"'{s}'" in row["thought"] for s in set(inserted))


# --- criterion 4: a quantity off by a graded factor -------------------------------------------------------


@pytest.mark.parametrize("bucket", BUCKETS)
def test_criterion_4_changes_a_quantity_by_a_graded_factor(made, bucket):
    number = re.compile(NUMBER)
    low, high = p.QUANTITY_BANDS[bucket]
    for row in rows(made, 4, bucket):
        before, after = number.findall(row["base"]), number.findall(row["translation"])
        changed = [(a, b) for a, b in zip(before, after) if a != b]
        assert len(before) == len(after) and len(changed) == 1, row["translation"]
        old, new = changed[0]
        assert low < max(float(new) / float(old), float(old) / float(new)) <= high
        assert f"changes the quantity '{old}' of the source to '{new}'" in row["thought"]
        assert ("too large" if float(new) > float(old) else "too small") in row["thought"]


# --- criterion 5: format damage, by how much ----------------------------------------------------------------


@pytest.mark.parametrize("bucket, lines", [(4, 1), (3, 2), (2, 2), (1, 3)])
def test_criterion_5_damages_the_format_by_a_graded_amount(made, bucket, lines):
    for row in rows(made, 5, bucket):
        text = row["translation"]
        assert text.count("\n") + 1 == lines, text
        marks = re.findall(r"^(\S+) ", text, flags=re.MULTILINE)
        if bucket == 4:
            wrapped = any(text == f"{o}{row['base']}{c}" for o, c in WRAPS)
            assert wrapped or text == f"{marks[0]} {row['base']}", text
            assert "adds 1 format mark" in row["thought"]
        else:
            listed = lines if bucket in (2, 1) else 1
            body = "".join(line.split(" ", 1)[1] if i < listed else line for i, line in enumerate(text.split("\n")))
            assert squeeze(body) == squeeze(row["base"]), text
            assert f"'{marks[0]}'" in row["thought"]
            assert ("2 format marks" if bucket == 3 else f"{lines}-item list") in row["thought"]


def test_criterion_5_bucket_0_puts_every_word_on_its_own_line(made):
    for row in rows(made, 5, 0):
        lines = row["translation"].split("\n")
        words = tokens(row["base"])
        heading = len(lines) == len(words) + 1
        items = lines[1:] if heading else lines
        assert len(items) == len(words) and [item.split(" ", 1)[1] for item in items] == words, row["translation"]
        assert f"a list of {len(words)} items, one word per line" in row["thought"]
        assert heading == ("under the added heading" in row["thought"])
