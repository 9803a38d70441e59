"""Graded perturbations of a flawless translation: a family of distinct texts for every (simple criterion, score bucket).

The families are of the kinds published for stress-testing MT metrics (omission, duplication, unrelated
insertion, untranslated words, number and unit changes, punctuation and format damage), written here from
those descriptions. Severity grows as the bucket falls: bucket 4 is the mildest form of a defect, bucket 0
its worst, and the text shows how bad it is by a count (words withheld, words left in English, words
added, symbols inserted, list items) or a factor (how far a quantity is off); the defect text, which
becomes the thought, names that count or factor.

A family is a polars expression over a frame of prepared bases (`prepare`) with a variant index `_v`:
`capacity` is how many distinct variants the family can make from a row's base (0: the base cannot show
the defect at this severity, e.g. a translation without a number for criterion 4), and `make` turns the
row's variant number (0 <= variant < capacity) into (text, defect). Variants are texts that differ, so a
base gives up to `capacity` distinct samples of one group.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import polars as pl

from tqc_dagster.core.rubric import SIMPLE_CRITERIA

BUCKETS = (0, 1, 2, 3, 4)
TOKEN = r"\s*(?:\p{Han}{1,2}|[^\s\p{Han}]+)"  # a word with the space before it; Chinese (no spaces) by two characters
SOURCE_TOKEN = r"\s*\S+"
LATIN_WORD = r"[A-Za-z][A-Za-z'-]{2,}"
NUMBER = r"\b\d+(?:\.\d+)?\b"  # a standalone number: not the 3 of "D3"
NATIVE = r"[^\x00-\x7F]"  # a word of the target language has a non-ASCII letter (sources are English)

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
WRAPS = [("「", "」"), ("“", "”"), ("【", "】"), ("《", "》"), ("**", "**"), ('"', '"'), ("[", "]"), ("『", "』")]
HEADINGS = {"zh-cn": ["翻译：", "译文：", "标题："], "ru-ru": ["Перевод:", "Название:", "Заголовок:"], "*": ["Translation:", "Title:", "Result:"]}
CIRCLED = {i: chr(0x2460 + i - 1) for i in range(1, 21)}
LETTERS = {i: chr(ord("a") + i - 1) for i in range(1, 27)}
LIST_STYLES = 8  # see _marker
MAX_LIST_ITEMS = 20

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
MAX_NUMBERS = 3

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


class Family(NamedTuple):
    capacity: pl.Expr  # Int64: distinct variants this base can give (0: cannot show it)
    make: Callable[[pl.Expr], tuple[pl.Expr, pl.Expr]]  # variant number -> (text, defect)
    # Columns `make` reads, added in this order first (variant number -> expressions); spelled out as
    # columns, a deep expression is computed once instead of once per use.
    stages: tuple[Callable[[pl.Expr], list[pl.Expr]], ...] = ()

    def apply(self, frame: pl.DataFrame, variant: str) -> tuple[pl.DataFrame, pl.Expr, pl.Expr]:
        """`frame` with the stages' columns, and the (text, defect) expressions of its `variant` column."""
        for stage in self.stages:
            frame = frame.with_columns(stage(pl.col(variant)))
        text, defect = self.make(pl.col(variant))
        return frame, text, defect


T, TOK, N = pl.col("_t"), pl.col("_tok"), pl.col("_n")


def _missing_words(bases: pl.DataFrame) -> pl.Series:
    """Per base, the source's Latin words (3+ letters) that its translation does not contain, once each, in source order."""
    rows = bases.select(pl.int_range(pl.len()).alias("_row"), "source", "translation")
    source = rows.select("_row", pl.col("source").str.extract_all(LATIN_WORD).alias("word")).explode("word", empty_as_null=False)
    kept = rows.select("_row", pl.col("translation").str.extract_all(LATIN_WORD).alias("word")).explode("word", empty_as_null=False)
    missing = (
        source.drop_nulls().join(kept.drop_nulls(), on=["_row", "word"], how="anti").unique(["_row", "word"], keep="first", maintain_order=True)
        .group_by("_row", maintain_order=True).agg("word")
    )
    words = rows.select("_row").join(missing, on="_row", how="left", maintain_order="left").get_column("word")
    return words.fill_null(pl.lit([], dtype=pl.List(pl.String))).cast(pl.List(pl.String)).alias("_words")


def prepare(bases: pl.DataFrame) -> pl.DataFrame:
    """The columns every family reads, computed once per base translation."""
    tok = pl.col("translation").str.extract_all(TOKEN)
    return bases.with_columns(tok.alias("_tok"), pl.col("source").str.extract_all(SOURCE_TOKEN).alias("_stok"), _missing_words(bases)).with_columns(
        pl.col("_tok").list.join("").alias("_t"),
        pl.col("_tok").list.len().cast(pl.Int64).alias("_n"),
        pl.col("_stok").list.len().cast(pl.Int64).alias("_ns"),
        pl.col("_tok").list.eval(pl.element().filter(pl.element().str.contains(NATIVE))).alias("_native"),
        pl.col("translation").str.extract_all(NUMBER).alias("_nums"),
        pl.col("_tok").list.eval(pl.element().str.len_chars().cum_sum()).cast(pl.List(pl.Int64)).alias("_ends"),
    ).with_columns(
        pl.col("_native").list.len().cast(pl.Int64).alias("_nn"),
        pl.col("_words").list.len().cast(pl.Int64).alias("_m"),
        pl.min_horizontal(pl.col("_nums").list.len().cast(pl.Int64), pl.lit(MAX_NUMBERS)).alias("_q"),
    )


# --- small helpers -----------------------------------------------------------------------------------------


def _pick(options: list[str], index: pl.Expr) -> pl.Expr:
    return pl.concat_list([pl.lit(option) for option in options]).list.get(index % len(options), null_on_oob=True)


def _by_language(table: dict[str, list[str]], index: pl.Expr) -> pl.Expr:
    chosen = pl.when(pl.lit(False)).then(pl.lit(None, dtype=pl.String))
    for language, options in table.items():
        if language != "*":
            chosen = chosen.when(pl.col("target_lang") == language).then(_pick(options, index))
    return chosen.otherwise(_pick(table["*"], index))


def _quoted(expr: pl.Expr) -> pl.Expr:
    return pl.concat_str(pl.lit("'"), expr, pl.lit("'"))


def _num(expr: pl.Expr) -> pl.Expr:
    return expr.cast(pl.String)


def _words(count: pl.Expr) -> pl.Expr:
    """'1 word' / '3 words'."""
    return pl.concat_str(_num(count), pl.when(count == 1).then(pl.lit(" word")).otherwise(pl.lit(" words")))


def _join(tokens: pl.Expr, separator: str = "") -> pl.Expr:
    """`tokens.list.join(separator)`, also on an empty frame: polars 1.44 fails to join a list sliced by an
    expression there (its dtype becomes null), which happens in every when/then branch that no row takes."""
    return pl.concat_list(tokens, pl.lit(pl.Series([[]], dtype=pl.List(pl.String)))).list.join(separator)


def _glued(tokens: pl.Expr) -> pl.Expr:
    return _join(tokens).str.strip_chars()


def _insert(tokens: pl.Expr, at: pl.Expr, piece: pl.Expr) -> pl.Expr:
    """`piece` put before token `at` (at == len: at the end), with a space on both sides."""
    head = _join(tokens.list.head(at))
    tail = _join(tokens.list.slice(at)).str.strip_chars_start()
    return pl.concat_str(head, pl.lit(" "), piece, pl.lit(" "), tail).str.strip_chars()


def _replace(tokens: pl.Expr, at: pl.Expr, count: pl.Expr, piece: pl.Expr) -> pl.Expr:
    """Tokens at..at+count replaced by `piece`."""
    return _insert(pl.concat_list(tokens.list.head(at), tokens.list.slice(at + count)), at, piece)


def _positive(expr: pl.Expr) -> pl.Expr:
    return pl.max_horizontal(expr, pl.lit(0, dtype=pl.Int64))


# --- criterion 0: sensitive content refused (omission behind a refusal) ------------------------------------


def _withheld_run(count: pl.Expr) -> Family:
    notes = len(REFUSAL_NOTES["*"])
    runs = N - count + 1
    capacity = pl.when(N - count >= 2).then(runs * notes).otherwise(0)

    def make(variant: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
        at, note = variant % runs, _by_language(REFUSAL_NOTES, variant // runs)
        withheld = _glued(TOK.list.slice(at, count))
        defect = pl.concat_str(
            pl.lit("withholds "), _num(count), pl.lit(" of its "), _words(N), pl.lit(" ("), _quoted(withheld), pl.lit(") behind the refusal note "),
            _quoted(note), pl.lit("; the other "), _num(N - count), pl.lit(" are translated"),
        )
        return _replace(TOK, at, count, note), defect

    return Family(capacity, make)


def _all_but_one_withheld() -> Family:
    """Only one word of the target language is left; everything else is behind a refusal note."""
    notes, nn = len(REFUSAL_NOTES["*"]), pl.col("_nn")
    capacity = pl.when((N >= 5) & (nn >= 1)).then(nn * notes * 2).otherwise(0)

    def make(variant: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
        at, rest = variant % nn.clip(1), variant // nn.clip(1)
        note, kept = _by_language(REFUSAL_NOTES, rest % notes), pl.col("_native").list.get(at, null_on_oob=True).str.strip_chars()
        text = pl.when(rest // notes == 0).then(pl.concat_str(kept, pl.lit(" "), note)).otherwise(pl.concat_str(note, pl.lit(" "), kept))
        defect = pl.concat_str(
            pl.lit("translates only 1 of its "), _words(N), pl.lit(" ("), _quoted(kept), pl.lit(") and withholds the other "), _num(N - 1),
            pl.lit(" behind the refusal note "), _quoted(note),
        )
        return text, defect

    return Family(capacity, make)


def _full_refusal() -> Family:
    plain, quoted = len(REFUSALS["*"]), len(QUOTED_REFUSALS["*"])
    ns = pl.col("_ns")
    capacity = pl.when(ns >= 1).then(plain + quoted * ns).otherwise(0)

    def make(variant: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
        rest = _positive(variant - plain)
        word = pl.col("_stok").list.get(rest % ns.clip(1), null_on_oob=True).str.strip_chars().str.strip_chars(",.;:()[]\"")
        text = pl.when(variant < plain).then(_by_language(REFUSALS, variant)).otherwise(
            _by_language(QUOTED_REFUSALS, rest // ns.clip(1)).str.replace("{w}", word, literal=True)
        )
        defect = pl.concat_str(pl.lit("refuses the whole title ("), _quoted(text), pl.lit("): none of its "), _words(N), pl.lit(" is translated"))
        return text, defect

    return Family(capacity, make)


# --- criterion 1: words left in a non-target language (untranslated English) ------------------------------


def _english_words(count: int) -> Family:
    m = pl.col("_m")
    runs = m - count + 1
    capacity = pl.when(runs >= 1).then(runs * (N + 1)).otherwise(0)

    def make(variant: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
        first, at = variant % runs, variant // runs
        english = _join(pl.col("_words").list.slice(first, count), " ")
        defect = pl.concat_str(
            pl.lit("leaves "), _words(pl.lit(count)), pl.lit(" of the source untranslated, in English ("), _quoted(english),
            pl.lit(") in a "), pl.col("target_lang").fill_null("target-language"), pl.lit(" translation whose other words are translated"),
        )
        return _insert(TOK, at, english), defect

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
        shifted = variant if native_words == 2 else _positive(variant - 1)
        first, at = shifted % runs.clip(1), shifted // runs.clip(1)
        native = _glued(pl.col("_native").list.slice(first, native_words))
        mixed = _insert(pl.col("_stok"), at, native)
        lang = pl.col("target_lang").fill_null("the target language")
        kept = pl.concat_str(
            pl.lit("is left in English: all "), _words(ns), pl.lit(" of the source stay untranslated and only "), _words(pl.lit(native_words)),
            pl.lit(" ("), _quoted(native), pl.lit(") "), pl.lit("is" if native_words == 1 else "are"), pl.lit(" in "), lang,
        )
        if native_words == 2:
            return mixed, kept
        verbatim = pl.concat_str(pl.lit("is not translated at all: it repeats the English source word for word (all "), _words(ns), pl.lit(")"))
        return pl.when(variant == 0).then(pl.col("source")).otherwise(mixed), pl.when(variant == 0).then(verbatim).otherwise(kept)

    return Family(capacity, make)


# --- criterion 2: irrelevant or repeated words added (duplication, unrelated insertion) ---------------------


def _added_words(count: int) -> Family:
    fillers = len(FILLERS["*"])
    repeats = _positive(N - count + 1)
    capacity = pl.when(N >= 1).then(repeats + fillers * (N + 1)).otherwise(0)

    def make(variant: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
        start = pl.min_horizontal(variant, _positive(N - count))
        run = TOK.list.slice(start, count)
        copy = pl.concat_str(pl.lit(" "), _join(run).str.strip_chars_start())
        repeated = pl.concat_str(_join(TOK.list.head(start + count)), copy, _join(TOK.list.slice(start + count)))
        rest = _positive(variant - repeats)
        first, at = rest % fillers, rest // fillers
        added = pl.concat_str([_by_language(FILLERS, first + i) for i in range(count)], separator=" ")
        inserted = _insert(TOK, at, added)
        is_repeat = variant < repeats
        text = pl.when(is_repeat).then(repeated).otherwise(inserted)
        defect = pl.when(is_repeat).then(
            pl.concat_str(pl.lit("adds "), _words(pl.lit(count)), pl.lit(" by repeating "), _quoted(_glued(run)), pl.lit(" twice in a row"))
        ).otherwise(
            pl.concat_str(pl.lit("adds "), _words(pl.lit(count)), pl.lit(f" that {'is' if count == 1 else 'are'} not in the source, irrelevant to the product ("), _quoted(added), pl.lit(")"))
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
        symbols = [pl.when(rotating).then(_pick(SYMBOLS, first + j)).otherwise(_pick(SYMBOLS, first)) for j in range(count)]
        pieces = [T.str.slice(0, ends[0])]
        for j in range(count):
            pieces.append(symbols[j])
            pieces.append(T.str.slice(ends[j], (ends[j + 1] - ends[j]) if j + 1 < count else None))
        listed = pl.when(rotating).then(pl.concat_str([_quoted(symbol) for symbol in symbols], separator=", ")).otherwise(
            pl.concat_str(_quoted(symbols[0]), pl.lit(f" {count} times" if count > 1 else ""))
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
                _pick([str(f) for f in factors], variant // q).cast(pl.Float64).alias("_factor")]

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
        how = pl.when(off < 1.5).then(pl.concat_str(_num(percent), pl.lit(" %"), direction)).otherwise(pl.concat_str(times, pl.lit(" times"), direction))
        defect = pl.concat_str(pl.lit("changes the quantity "), _quoted(old_text), pl.lit(" of the source to "), _quoted(new_text), pl.lit(" ("), how, pl.lit(")"))
        return pl.when(valid).then(_nth_number_replaced(index, old_text, new_text)), defect

    return Family(pl.col("_q") * len(factors), make, (scale, rounded, measured))


# --- criterion 5: format damage (list markers, line breaks, wrapping) ---------------------------------------


def _marker(style: int, item: pl.Expr) -> pl.Expr:
    """The list marker of item `item` (1-based) in one of LIST_STYLES styles."""
    number = item.cast(pl.String)
    return [
        pl.concat_str(number, pl.lit(".")), pl.concat_str(number, pl.lit(")")), pl.concat_str(pl.lit("("), number, pl.lit(")")),
        pl.lit("•"), pl.lit("-"), pl.lit("*"),
        item.replace_strict(CIRCLED, default="⑳", return_dtype=pl.String), pl.concat_str(item.replace_strict(LETTERS, default="z", return_dtype=pl.String), pl.lit(".")),
    ][style]


def _styled(style: pl.Expr, item: pl.Expr) -> pl.Expr:
    chosen = pl.when(style == 0).then(_marker(0, item))
    for s in range(1, LIST_STYLES):
        chosen = chosen.when(style == s).then(_marker(s, item))
    return chosen


def _lines(parts: list[pl.Expr], style: pl.Expr, numbered: bool) -> pl.Expr:
    pieces = []
    for i, part in enumerate(parts):
        if numbered or i == 0:
            pieces.append(pl.concat_str(_styled(style, pl.lit(i + 1)), pl.lit(" "), part))
        else:
            pieces.append(part)
    return pl.concat_str(pieces, separator="\n")


def _format(bucket: int) -> Family:
    styles = LIST_STYLES
    gaps = N - 1
    if bucket == 4:
        capacity = pl.when(N >= 1).then(pl.lit(styles + len(WRAPS))).otherwise(0)
    elif bucket in (3, 2):
        capacity = pl.when(N >= 2).then(styles * gaps).otherwise(0)
    elif bucket == 1:
        capacity = pl.when(N >= 3).then(styles * gaps * gaps).otherwise(0)
    else:
        capacity = pl.when((N >= 4) & (N <= MAX_LIST_ITEMS)).then(pl.lit(styles * (1 + len(HEADINGS["*"])))).otherwise(0)

    def make(variant: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
        if bucket == 4:
            style, wrap = variant.clip(0, styles - 1), variant - styles
            opening, closing = _pick([o for o, _ in WRAPS], wrap), _pick([c for _, c in WRAPS], wrap)
            listed = variant < styles
            text = pl.when(listed).then(pl.concat_str(_styled(style, pl.lit(1)), pl.lit(" "), T)).otherwise(pl.concat_str(opening, T, closing))
            defect = pl.when(listed).then(pl.concat_str(pl.lit("adds 1 format mark: the list marker "), _quoted(_styled(style, pl.lit(1))), pl.lit(" before the title"))).otherwise(
                pl.concat_str(pl.lit("adds 1 format mark: it wraps the title in "), _quoted(pl.concat_str(opening, pl.lit("…"), closing)))
            )
            return text, defect
        if bucket in (3, 2):
            at, style = 1 + variant % gaps.clip(1), variant // gaps.clip(1)
            parts = [_glued(TOK.list.head(at)), _glued(TOK.list.slice(at))]
            if bucket == 3:
                defect = pl.concat_str(pl.lit("adds 2 format marks: the list marker "), _quoted(_styled(style, pl.lit(1))), pl.lit(" and a line break after "), _quoted(parts[0]))
            else:
                defect = pl.concat_str(pl.lit("is split into a 2-item list ("), _quoted(_styled(style, pl.lit(1))), pl.lit(", "), _quoted(_styled(style, pl.lit(2))), pl.lit("), one part per line"))
            return _lines(parts, style, numbered=bucket == 2), defect
        if bucket == 1:
            first, rest = variant % gaps.clip(1), variant // gaps.clip(1)
            second, style = rest % gaps.clip(1), rest // gaps.clip(1)
            cut1, cut2 = 1 + first, 1 + second
            parts = [_glued(TOK.list.head(cut1)), _glued(TOK.list.slice(cut1, cut2 - cut1)), _glued(TOK.list.slice(cut2))]
            defect = pl.concat_str(pl.lit("is split into a 3-item list ("), pl.concat_str([_quoted(_styled(style, pl.lit(i))) for i in (1, 2, 3)], separator=", "), pl.lit("), one part per line"))
            return pl.when(cut1 < cut2).then(_lines(parts, style, numbered=True)), defect
        style, heading = variant % styles, variant // styles
        lists = pl.lit(None, dtype=pl.String)
        for s in reversed(range(styles)):
            one = TOK.list.eval(pl.concat_str(_marker(s, pl.int_range(1, pl.len() + 1)), pl.lit(" "), pl.element().str.strip_chars())).list.join("\n")
            lists = pl.when(style == s).then(one).otherwise(lists)
        title = _by_language(HEADINGS, _positive(heading - 1))
        text = pl.when(heading == 0).then(lists).otherwise(pl.concat_str(title, pl.lit("\n"), lists))
        defect = pl.concat_str(
            pl.lit("is broken into a list of "), _num(N), pl.lit(" items, one word per line, marked "), _quoted(_styled(style, pl.lit(1))),
            pl.when(heading == 0).then(pl.lit("")).otherwise(pl.concat_str(pl.lit(" under the added heading "), _quoted(title))),
        )
        return text, defect

    return Family(capacity, make)


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
    return _format(bucket)
