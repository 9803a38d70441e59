"""Graded perturbations of a flawless translation: a family of distinct texts for every (simple criterion, score bucket).

The families are of the kinds published for stress-testing MT metrics (omission, duplication, unrelated
insertion, untranslated words, number and unit changes, punctuation and format damage), written here from
those descriptions. Severity grows as the bucket falls: bucket 4 is the mildest form of a defect, bucket 0
its worst, and the text shows how bad it is by a count (words withheld, words left in English, words
added, symbols inserted, list items) or a factor (how far a quantity is off); the defect text, which
becomes the thought, names that count or factor.

A family is a polars expression over a frame of prepared bases (perturbation_frame.prepare) with a variant index `_v`:
`capacity` is how many distinct variants the family can make from a row's base (0: the base cannot show
the defect at this severity, e.g. a translation without a number for criterion 4), and `make` turns the
row's variant number (0 <= variant < capacity) into (text, defect). Variants are texts that differ, so a
base gives up to `capacity` distinct samples of one group. Criterion 5 (format damage) is in format_damage.py.
"""

from __future__ import annotations

import polars as pl

from tqc_dagster.core.rubric import SIMPLE_CRITERIA
from tqc_dagster.core.synthesis.format_damage import MAX_LIST_ITEMS, format_family
from tqc_dagster.core.synthesis.perturbation_frame import (
    MAX_NUMBERS, NUMBER, N, T, TOK, Family, by_language, glued, insert, join, num, pick, positive, quoted, replace, words,
)

BUCKETS = (0, 1, 2, 3, 4)

# Refusal notes that take the place of withheld words (criterion 0), and whole refusals.
REFUSAL_NOTES = {
    "zh-cn": ["[无法翻译]", "（内容已省略）", "[此处省略]", "（敏感内容，未翻译）", "【已隐藏】", "（不予翻译）"],
    "ru-ru": ["[перевод невозможен]", "(фрагмент опущен)", "[скрыто]", "(не переводится)", "[контент удалён]", "(опущено)"],
    "*": ["[cannot translate]", "(omitted)", "[withheld]", "(not translated)", "[removed]", "(content hidden)"],
}
REFUSALS = {
    "zh-cn": ["抱歉，我无法翻译这段内容。", "很抱歉，该内容可能涉及敏感信息，我不能提供翻译。", "对不起，我不能协助翻译此内容。"],
    "ru-ru": ["Извините, я не могу перевести этот текст.", "К сожалению, я не могу помочь с переводом этого содержания.", "Простите, этот текст я переводить не буду."],
    "*": ["I'm sorry, I can't translate this content.", "Sorry, I cannot help with translating this.", "I won't translate this text."],
}
QUOTED_REFUSALS = {  # {w}: a word of the source
    "zh-cn": ["抱歉，我无法翻译包含“{w}”的内容。", "对不起，涉及“{w}”的内容我不能翻译。", "很抱歉，出于内容政策，我不能翻译“{w}”相关的标题。"],
    "ru-ru": ["Извините, я не могу переводить текст со словом «{w}».", "К сожалению, содержание, связанное с «{w}», я не перевожу.", "Простите, заголовок с «{w}» я переводить не буду."],
    "*": ["Sorry, I can't translate content mentioning '{w}'.", "I won't translate a title about '{w}'.", "I cannot help with text that contains '{w}'."],
}
FILLERS = {  # irrelevant words of shop titles, none of them a translation of anything in the source
    "zh-cn": ["热卖", "新款", "包邮", "正品", "优惠", "爆款", "特价", "推荐", "限时", "促销"],
    "ru-ru": ["хит", "новинка", "скидка", "оригинал", "акция", "бестселлер", "распродажа", "выгодно", "топ", "доставка"],
    "*": ["hot", "new", "sale", "original", "deal", "bestseller", "promo", "top", "offer", "shipping"],
}
SYMBOLS = ["#", "@", "※", "¿", "§", "¤", "~", "^", "□", "◆"]  # abnormal in a product title; none is a format mark

ADDED_WORDS = {4: 1, 3: 2, 2: 3, 1: 5, 0: 8}  # criterion 2: words added
ADDED_SYMBOLS = {4: 1, 3: 2, 2: 3, 1: 5, 0: 8}  # criterion 3: symbols inserted
WITHHELD = {4: 1, 3: 2}  # criterion 0: words withheld (bucket 2: max(3, half), 1: all but one, 0: all)
ENGLISH_WORDS = {4: 1, 3: 2, 2: 3}  # criterion 1: source words left in English (1: all but two words, 0: all)
# criterion 4: multipliers of a quantity, and the factor band (how far off) that defines each bucket
QUANTITY_FACTORS = {
    4: [1.08, 0.93, 1.05, 0.95, 1.1, 0.91, 1.03, 0.97, 1.06, 0.94, 1.02, 0.98, 1.04, 0.96, 1.07, 0.92, 1.09, 0.99, 1.01, 0.935],
    3: [1.5, 0.7, 1.25, 0.8, 1.2, 0.75, 1.4, 0.67, 1.3, 0.85, 1.15, 0.88, 1.35, 0.72, 1.45, 0.78, 1.12, 0.83, 1.22, 0.69],
    2: [2.0, 0.5, 3.0, 0.25, 4.0, 0.2, 2.5, 0.4, 5.0, 0.3, 1.8, 0.6, 3.5, 0.35, 1.6, 0.45],
    1: [10.0, 0.1, 8.0, 0.125, 20.0, 0.05, 12.0, 0.08, 30.0, 0.04, 6.0, 0.15, 15.0, 0.06, 40.0, 0.025],
    0: [100.0, 0.01, 1000.0, 0.001, 200.0, 0.005, 500.0, 0.002, 60.0, 10000.0, 0.0001, 75.0, 150.0, 0.0005, 300.0, 0.003],
}
QUANTITY_BANDS = {4: (1.0, 1.1), 3: (1.1, 1.5), 2: (1.5, 5.0), 1: (5.0, 50.0), 0: (50.0, float("inf"))}  # (low, high]

# What a base needs to show a family: said in the report of a group that could not be filled.
REQUIRES = {
    (0, 4): "at least 3 words", (0, 3): "at least 4 words", (0, 2): "at least 5 words",
    (0, 1): "at least 5 words, one in the target language", (0, 0): "a source",
    (1, 4): "a source word (3+ Latin letters) missing from the translation",
    (1, 3): "2 source words (3+ Latin letters) missing from the translation",
    (1, 2): "3 source words (3+ Latin letters) missing from the translation",
    (1, 1): "at least 3 words in the target language", (1, 0): "a word in the target language",
    (2, 4): "a word", (2, 3): "a word", (2, 2): "a word", (2, 1): "a word", (2, 0): "a word",
    (3, 4): "no abnormal symbol already", (3, 3): "no abnormal symbol already", (3, 2): "no abnormal symbol already",
    (3, 1): "no abnormal symbol already", (3, 0): "no abnormal symbol already",
    (4, 4): "a standalone number above 0", (4, 3): "a standalone number above 0", (4, 2): "a standalone number above 0",
    (4, 1): "a standalone number above 0", (4, 0): "a standalone number above 0",
    (5, 4): "a word", (5, 3): "at least 2 words", (5, 2): "at least 2 words", (5, 1): "at least 3 words", (5, 0): f"4 to {MAX_LIST_ITEMS} words",
}


# --- criterion 0: sensitive content refused (omission behind a refusal) ------------------------------------


def _withheld_run(count: pl.Expr) -> Family:
    notes = len(REFUSAL_NOTES["*"])
    runs = N - count + 1
    capacity = pl.when(N - count >= 2).then(runs * notes).otherwise(0)

    def make(variant: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
        at, note = variant % runs, by_language(REFUSAL_NOTES, variant // runs)
        withheld = glued(TOK.list.slice(at, count))
        defect = pl.concat_str(
            pl.lit("withholds "), num(count), pl.lit(" of its "), words(N), pl.lit(" ("), quoted(withheld), pl.lit(") behind the refusal note "),
            quoted(note), pl.lit("; the other "), num(N - count), pl.lit(" are translated"),
        )
        return replace(TOK, at, count, note), defect

    return Family(capacity, make)


def _all_but_one_withheld() -> Family:
    """Only one word of the target language is left; everything else is behind a refusal note."""
    notes, nn = len(REFUSAL_NOTES["*"]), pl.col("_nn")
    capacity = pl.when((N >= 5) & (nn >= 1)).then(nn * notes * 2).otherwise(0)

    def make(variant: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
        at, rest = variant % nn.clip(1), variant // nn.clip(1)
        note, kept = by_language(REFUSAL_NOTES, rest % notes), pl.col("_native").list.get(at, null_on_oob=True).str.strip_chars()
        text = pl.when(rest // notes == 0).then(pl.concat_str(kept, pl.lit(" "), note)).otherwise(pl.concat_str(note, pl.lit(" "), kept))
        defect = pl.concat_str(
            pl.lit("translates only 1 of its "), words(N), pl.lit(" ("), quoted(kept), pl.lit(") and withholds the other "), num(N - 1),
            pl.lit(" behind the refusal note "), quoted(note),
        )
        return text, defect

    return Family(capacity, make)


def _full_refusal() -> Family:
    plain, naming_a_word = len(REFUSALS["*"]), len(QUOTED_REFUSALS["*"])
    ns = pl.col("_ns")
    capacity = pl.when(ns >= 1).then(plain + naming_a_word * ns).otherwise(0)

    def make(variant: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
        rest = positive(variant - plain)
        word = pl.col("_stok").list.get(rest % ns.clip(1), null_on_oob=True).str.strip_chars().str.strip_chars(",.;:()[]\"")
        text = pl.when(variant < plain).then(by_language(REFUSALS, variant)).otherwise(
            by_language(QUOTED_REFUSALS, rest // ns.clip(1)).str.replace("{w}", word, literal=True)
        )
        defect = pl.concat_str(pl.lit("refuses the whole title ("), quoted(text), pl.lit("): none of its "), words(N), pl.lit(" is translated"))
        return text, defect

    return Family(capacity, make)


# --- criterion 1: words left in a non-target language (untranslated English) ------------------------------


def _english_words(count: int) -> Family:
    m = pl.col("_m")
    runs = m - count + 1
    capacity = pl.when(runs >= 1).then(runs * (N + 1)).otherwise(0)

    def make(variant: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
        first, at = variant % runs, variant // runs
        english = join(pl.col("_words").list.slice(first, count), " ")
        defect = pl.concat_str(
            pl.lit("leaves "), words(pl.lit(count)), pl.lit(" of the source untranslated, in English ("), quoted(english),
            pl.lit(") in a "), pl.col("target_lang").fill_null("target-language"), pl.lit(" translation whose other words are translated"),
        )
        return insert(TOK, at, english), defect

    return Family(capacity, make)


def _english_source(native_words: int) -> Family:
    """The English source kept as is, with `native_words` (0 or 1 -> bucket 0, 2 -> bucket 1) words of the translation inserted."""
    nn, ns = pl.col("_nn"), pl.col("_ns")
    if native_words == 2:
        runs = nn - 1
        capacity = pl.when(nn >= 3).then(runs * (ns + 1)).otherwise(0)
    else:
        runs = nn
        capacity = pl.when(nn >= 1).then(1 + runs * (ns + 1)).otherwise(0)

    def make(variant: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
        shifted = variant if native_words == 2 else positive(variant - 1)
        first, at = shifted % runs.clip(1), shifted // runs.clip(1)
        native = glued(pl.col("_native").list.slice(first, native_words))
        mixed = insert(pl.col("_stok"), at, native)
        lang = pl.col("target_lang").fill_null("the target language")
        kept = pl.concat_str(
            pl.lit("is left in English: all "), words(ns), pl.lit(" of the source stay untranslated and only "), words(pl.lit(native_words)),
            pl.lit(" ("), quoted(native), pl.lit(") "), pl.lit("is" if native_words == 1 else "are"), pl.lit(" in "), lang,
        )
        if native_words == 2:
            return mixed, kept
        verbatim = pl.concat_str(pl.lit("is not translated at all: it repeats the English source word for word (all "), words(ns), pl.lit(")"))
        return pl.when(variant == 0).then(pl.col("source")).otherwise(mixed), pl.when(variant == 0).then(verbatim).otherwise(kept)

    return Family(capacity, make)


# --- criterion 2: irrelevant or repeated words added (duplication, unrelated insertion) ---------------------


def _added_words(count: int) -> Family:
    fillers = len(FILLERS["*"])
    repeats = positive(N - count + 1)
    capacity = pl.when(N >= 1).then(repeats + fillers * (N + 1)).otherwise(0)

    def make(variant: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
        start = pl.min_horizontal(variant, positive(N - count))
        run = TOK.list.slice(start, count)
        copy = pl.concat_str(pl.lit(" "), join(run).str.strip_chars_start())
        repeated = pl.concat_str(join(TOK.list.head(start + count)), copy, join(TOK.list.slice(start + count)))
        rest = positive(variant - repeats)
        first, at = rest % fillers, rest // fillers
        added = pl.concat_str([by_language(FILLERS, first + i) for i in range(count)], separator=" ")
        inserted = insert(TOK, at, added)
        is_repeat = variant < repeats
        text = pl.when(is_repeat).then(repeated).otherwise(inserted)
        defect = pl.when(is_repeat).then(
            pl.concat_str(pl.lit("adds "), words(pl.lit(count)), pl.lit(" by repeating "), quoted(glued(run)), pl.lit(" twice in a row"))
        ).otherwise(
            pl.concat_str(pl.lit("adds "), words(pl.lit(count)), pl.lit(f" that {'is' if count == 1 else 'are'} not in the source, irrelevant to the product ("), quoted(added), pl.lit(")"))
        )
        return text, defect

    return Family(capacity, make)


# --- criterion 3: abnormal symbols (character noise) ---------------------------------------------------------


def _symbols(count: int) -> Family:
    offsets = (N + count - 1) // count
    clean = ~T.str.contains("[" + "".join("\\" + symbol if symbol in "^~" else symbol for symbol in SYMBOLS) + "]")
    modes = 2 if count > 1 else 1  # one symbol repeated, or different symbols
    capacity = pl.when(clean & (N >= 1)).then(offsets * len(SYMBOLS) * modes).otherwise(0)

    def make(variant: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
        offset, rest = variant % offsets, variant // offsets
        first, rotating = rest % len(SYMBOLS), rest // len(SYMBOLS) == 1
        ends = [pl.col("_ends").list.get(pl.min_horizontal(N - 1, pl.lit(j) * N // count + offset), null_on_oob=True) for j in range(count)]
        symbols = [pl.when(rotating).then(pick(SYMBOLS, first + j)).otherwise(pick(SYMBOLS, first)) for j in range(count)]
        pieces = [T.str.slice(0, ends[0])]
        for j in range(count):
            pieces.append(symbols[j])
            pieces.append(T.str.slice(ends[j], (ends[j + 1] - ends[j]) if j + 1 < count else None))
        listed = pl.when(rotating).then(pl.concat_str([quoted(symbol) for symbol in symbols], separator=", ")).otherwise(
            pl.concat_str(quoted(symbols[0]), pl.lit(f" {count} times" if count > 1 else ""))
        )
        defect = pl.concat_str(pl.lit(f"has {count} abnormal symbol{'s' if count > 1 else ''} inserted into the text ("), listed, pl.lit(")"))
        return pl.concat_str(pieces), defect

    return Family(capacity, make)


# --- criterion 4: quantities off by a graded factor ------------------------------------------------------


def _nth_number_replaced(index: pl.Expr, old: pl.Expr, new: pl.Expr) -> pl.Expr:
    """The translation with its number `index` (0-based; its text `old`) replaced by `new`."""
    before = pl.lit(None, dtype=pl.String)
    for i in reversed(range(MAX_NUMBERS)):
        before = pl.when(index == i).then(T.str.extract(r"(?s)^((?:.*?" + NUMBER + "){" + str(i) + "}.*?)" + NUMBER, 1)).otherwise(before)
    return pl.concat_str(before, new, T.str.slice(before.str.len_chars() + old.str.len_chars()))


def _quantity(bucket: int) -> Family:
    factors, (low, high) = QUANTITY_FACTORS[bucket], QUANTITY_BANDS[bucket]
    q = pl.col("_q").clip(1)
    old, new, off = pl.col("_old"), pl.col("_new"), pl.col("_off")

    def scale(variant: pl.Expr) -> list[pl.Expr]:
        parsed = pl.col("_nums").list.get(variant % q, null_on_oob=True).cast(pl.Float64, strict=False)
        return [pl.when(parsed > 0).then(parsed).alias("_old"),  # null, not NaN or inf, where there is nothing to scale
                pick([str(f) for f in factors], variant // q).cast(pl.Float64).alias("_factor")]

    def rounded(variant: pl.Expr) -> list[pl.Expr]:
        scaled = old * pl.col("_factor")
        value = pl.when(scaled >= 10).then(scaled.round(0)).otherwise(scaled.round_sig_figs(3))
        return [pl.when(value > 0).then(value).alias("_new")]

    def measured(variant: pl.Expr) -> list[pl.Expr]:
        return [pl.max_horizontal(new / old, old / new).alias("_off"),
                pl.when(new == new.floor()).then(new.cast(pl.Int64).cast(pl.String)).otherwise(new.cast(pl.String)).alias("_new_text")]

    def make(variant: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
        index = variant % q
        old_text, new_text = pl.col("_nums").list.get(index, null_on_oob=True), pl.col("_new_text")
        valid = (old > 0) & (new > 0) & (off > low) & (off <= high)
        direction = pl.when(new > old).then(pl.lit(" too large")).otherwise(pl.lit(" too small"))
        percent = ((new - old).abs() / old * 100).round(0).cast(pl.Int64)
        factor = pl.when(off >= 10).then(off.round(0)).otherwise(off.round(1))
        times = pl.when(factor == factor.floor()).then(factor.cast(pl.Int64).cast(pl.String)).otherwise(factor.cast(pl.String))
        how = pl.when(off < 1.5).then(pl.concat_str(num(percent), pl.lit(" %"), direction)).otherwise(pl.concat_str(times, pl.lit(" times"), direction))
        defect = pl.concat_str(pl.lit("changes the quantity "), quoted(old_text), pl.lit(" of the source to "), quoted(new_text), pl.lit(" ("), how, pl.lit(")"))
        return pl.when(valid).then(_nth_number_replaced(index, old_text, new_text)), defect

    return Family(pl.col("_q") * len(factors), make, (scale, rounded, measured))


def family(criterion: int, bucket: int) -> Family:
    """The perturbation family of one simple criterion at one score bucket (4: mildest, 0: worst)."""
    if criterion not in SIMPLE_CRITERIA or bucket not in BUCKETS:
        raise ValueError(f"no family for criterion {criterion}, bucket {bucket}: simple criteria {SIMPLE_CRITERIA}, buckets {BUCKETS}")
    if criterion == 0:
        if bucket in WITHHELD:
            return _withheld_run(pl.lit(WITHHELD[bucket], dtype=pl.Int64))
        if bucket == 2:
            return _withheld_run(pl.max_horizontal(pl.lit(3, dtype=pl.Int64), (N + 1) // 2))
        return _all_but_one_withheld() if bucket == 1 else _full_refusal()
    if criterion == 1:
        return _english_words(ENGLISH_WORDS[bucket]) if bucket in ENGLISH_WORDS else _english_source(2 if bucket == 1 else 1)
    if criterion == 2:
        return _added_words(ADDED_WORDS[bucket])
    if criterion == 3:
        return _symbols(ADDED_SYMBOLS[bucket])
    if criterion == 4:
        return _quantity(bucket)
    return format_family(bucket)
