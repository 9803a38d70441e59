"""The `rules` synthesis backend: offline, deterministic, and honest about what it made.

It takes a flawless judged translation (all 7 scores 5) of the group's product category and
corrupts it so that it shows exactly the group's criterion's problem, scores that criterion
inside the group's score bucket (the other six stay 5, so the criterion is the unique lowest),
and writes a thought that names the concrete defect it introduced. Corruptions are polars
expressions over the whole candidate frame; buckets 0-2 get a severe form of the defect,
buckets 3-4 a mild one.
"""

from __future__ import annotations

import polars as pl

from tqc_dagster.core.hashing import stable_hash_expr, stable_id_expr
from tqc_dagster.core.judgments import SAMPLE_COLUMNS, Thresholds, with_derived_columns
from tqc_dagster.core.rubric import CRITERIA, JUDGED, MAX_SCORE, N_SCORES, SIMPLE_CRITERIA, SYNTHETIC
from tqc_dagster.core.synthesis import GROUP_KEYS, SynthesisOutput

NAME = "rules"
RULE_SET = "rules-v1"
SEVERE_MAX_BUCKET = 2
VARIANTS = 3  # different corruptions of one base, used when a category has few flawless bases
BASE_OVERSAMPLING = 4  # bases tried per sample needed, since some cannot show a criterion (no number for 4)

REFUSALS = {
    "zh-cn": ["抱歉，我无法翻译这段内容。", "很抱歉，该内容可能涉及敏感信息，我不能提供翻译。", "对不起，我不能协助翻译此内容。"],
    "ru-ru": ["Извините, я не могу перевести этот текст.", "К сожалению, я не могу помочь с переводом этого содержания.", "Простите, этот текст я переводить не буду."],
    "*": ["I'm sorry, I can't translate this content.", "Sorry, I cannot help with translating this.", "I won't translate this text."],
}
PARTIAL_REFUSALS = {
    "zh-cn": ["（部分内容涉及敏感信息，无法翻译）", "（此处内容已省略）", "（无法翻译部分内容）"],
    "ru-ru": ["(часть текста не может быть переведена)", "(фрагмент опущен)", "(не могу перевести часть текста)"],
    "*": ["(part of this content cannot be translated)", "(content omitted)", "(cannot translate part of this)"],
}
FILLERS = {
    "zh-cn": ["热卖", "新款", "包邮", "正品", "优惠"],
    "ru-ru": ["хит", "новинка", "скидка", "оригинал", "акция"],
    "*": ["hot", "new", "sale", "original", "deal"],
}
ABNORMAL_SYMBOLS = ["�", "#", "@@", "※", "¿"]
NUMBERING = ["1. ", "• ", "- "]
LATIN_WORD = r"[A-Za-z][A-Za-z'-]{2,}"
FIRST_WORD = r"^(\p{Han}{2}|\S+)"  # the first word: two Han characters (Chinese has no spaces), else up to a space
NUMBER = r"\b\d+(?:\.\d+)?\b"  # a standalone number: not the 3 of "D3"


def _pick(options: list[str], index: pl.Expr) -> pl.Expr:
    return pl.concat_list([pl.lit(option) for option in options]).list.get(index % len(options))


def _by_language(table: dict[str, list[str]], index: pl.Expr) -> pl.Expr:
    chosen = pl.when(pl.lit(False)).then(pl.lit(None, dtype=pl.String))
    for language, options in table.items():
        if language != "*":
            chosen = chosen.when(pl.col("target_lang") == language).then(_pick(options, index))
    return chosen.otherwise(_pick(table["*"], index))


def _quoted(expr: pl.Expr) -> pl.Expr:
    return pl.concat_str(pl.lit("'"), expr, pl.lit("'"))


def _corruption(criterion: int) -> tuple[pl.Expr, pl.Expr]:
    """(corrupted translation, defect description) for one criterion; null where the base cannot show it."""
    t, v, severe = pl.col("translation"), pl.col("variant"), pl.col("severe")
    if criterion == 0:
        refusal = _by_language(REFUSALS, v)
        partial = _by_language(PARTIAL_REFUSALS, v)
        translation = pl.when(severe).then(refusal).otherwise(pl.concat_str(t, pl.lit(" "), partial))
        defect = pl.when(severe).then(
            pl.concat_str(pl.lit("is a refusal ("), _quoted(refusal), pl.lit(") instead of a translation of the title"))
        ).otherwise(pl.concat_str(pl.lit("ends with a partial refusal "), _quoted(partial), pl.lit(" instead of translating all of the title")))
        return translation, defect
    if criterion == 1:
        untranslated = pl.col("source").str.extract_all(LATIN_WORD).list.set_difference(t.str.extract_all(LATIN_WORD))
        count = untranslated.list.len()
        words = pl.when(severe).then(untranslated.list.head(3).list.join(" ")).otherwise(untranslated.list.get(v % count.clip(1), null_on_oob=True))
        words = pl.when(count > 0).then(words)
        # Severe: the words on both sides, so it never coincides with a mild text of the same base.
        translation = (
            pl.when(severe)
            .then(pl.concat_str(words, pl.lit(" "), t, pl.lit(" "), words))
            .when(v % 2 == 0)
            .then(pl.concat_str(t, pl.lit(" "), words))
            .otherwise(pl.concat_str(words, pl.lit(" "), t))
        )
        return translation, pl.concat_str(pl.lit("leaves the source word(s) "), _quoted(words), pl.lit(" untranslated (English in a "), pl.col("target_lang"), pl.lit(" translation)"))
    if criterion == 2:
        first = t.str.extract(FIRST_WORD)
        repeated = pl.when(severe).then(pl.concat_str(first, pl.lit(" "), first)).otherwise(first)
        fillers = pl.when(severe).then(pl.concat_str(_by_language(FILLERS, v), pl.lit(" "), _by_language(FILLERS, v + 1))).otherwise(_by_language(FILLERS, v))
        repeat = v % 2 == 0
        translation = pl.when(repeat).then(pl.concat_str(repeated, pl.lit(" "), t)).otherwise(pl.concat_str(fillers, pl.lit(" "), t))
        defect = pl.when(repeat).then(
            pl.concat_str(pl.lit("repeats the word "), _quoted(first), pl.when(severe).then(pl.lit(" twice")).otherwise(pl.lit("")), pl.lit(" at the start"))
        ).otherwise(
            pl.concat_str(pl.lit("adds the irrelevant word(s) "), _quoted(fillers), pl.lit(" that are not in the source"))
        )
        return translation, defect
    if criterion == 3:
        symbol = _pick(ABNORMAL_SYMBOLS, v)
        middle = (t.str.len_chars() // 2).cast(pl.Int64)
        inserted = pl.when(severe).then(pl.concat_str(symbol, symbol)).otherwise(symbol)
        translation = pl.concat_str(t.str.slice(0, middle), inserted, t.str.slice(middle))
        translation = pl.when(severe).then(pl.concat_str(translation, symbol)).otherwise(translation)
        return translation, pl.concat_str(pl.lit("contains the abnormal symbol "), _quoted(symbol), pl.lit(" inserted into the text"))
    if criterion == 4:
        number = t.str.extract(f"({NUMBER})")
        value = number.cast(pl.Float64, strict=False)
        factor = pl.when(severe).then(pl.lit(10.0)).otherwise(pl.lit(1.0))
        changed = pl.when(severe).then(value * factor).otherwise(value + 1 + v % 3)
        changed_text = pl.when(changed == changed.floor()).then(changed.cast(pl.Int64).cast(pl.String)).otherwise(changed.round(2).cast(pl.String))
        translation = pl.when(number.is_not_null()).then(t.str.replace(NUMBER, changed_text))
        return translation, pl.concat_str(pl.lit("changes the quantity "), _quoted(number), pl.lit(" of the source to "), _quoted(changed_text))
    if criterion == 5:
        mark = _pick(NUMBERING, v)
        translation = pl.when(severe).then(pl.concat_str(mark, t, pl.lit("\n"), mark, t)).otherwise(pl.concat_str(mark, t))
        defect = pl.when(severe).then(pl.concat_str(pl.lit("is split into a list with "), _quoted(mark.str.strip_chars()), pl.lit(" bullets and repeated"))).otherwise(
            pl.concat_str(pl.lit("adds the numbering/bullet "), _quoted(mark.str.strip_chars()), pl.lit(" before the title"))
        )
        return translation, defect
    raise ValueError(f"the rules backend synthesizes criteria {SIMPLE_CRITERIA}, not {criterion}")


def _corrupt(candidates: pl.DataFrame) -> pl.DataFrame:
    translation = pl.lit(None, dtype=pl.String)
    defect = pl.lit(None, dtype=pl.String)
    for criterion in SIMPLE_CRITERIA:
        corrupted, description = _corruption(criterion)
        translation = pl.when(pl.col("criterion") == criterion).then(corrupted).otherwise(translation)
        defect = pl.when(pl.col("criterion") == criterion).then(description).otherwise(defect)
    return candidates.with_columns(translation.alias("corrupted"), defect.alias("defect"))


def _scores(score: pl.Expr) -> pl.Expr:
    return pl.concat_list([pl.when(pl.col("criterion") == i).then(score).otherwise(pl.lit(MAX_SCORE)) for i in range(N_SCORES)])


def _thought() -> pl.Expr:
    criterion_name = pl.col("criterion").replace_strict(dict(enumerate(CRITERIA)), return_dtype=pl.String)
    return pl.concat_str(
        pl.lit("Criterion "), pl.col("criterion").cast(pl.String), pl.lit(" ("), criterion_name, pl.lit("): the translation "),
        pl.col("defect"), pl.lit(". Apart from this defect the translation is accurate and fluent."),
    )


class RulesBackend:
    """Corrupts flawless judged translations; see the module docstring."""

    name = NAME

    def __init__(self, thresholds: Thresholds):
        self.thresholds = thresholds

    def synthesize(self, judged: pl.DataFrame, wanted: pl.DataFrame, seed: int) -> SynthesisOutput:
        wanted = wanted.with_columns((pl.col("score_bucket") <= SEVERE_MAX_BUCKET).alias("severe"))
        pools = ["product_category", "criterion", "severe"]
        wanted = wanted.sort(GROUP_KEYS).with_columns(
            (pl.col("needed").cum_sum().over(pools) - pl.col("needed")).alias("start")
        )
        pool_needs = wanted.group_by(pools).agg(pl.col("needed").sum().alias("pool_needed"))
        bases = judged.filter((pl.col("origin") == JUDGED) & (pl.col("min_score") == MAX_SCORE)).select(
            pl.col("sample_id").alias("base_id"), "judge_version", "model", "record_id", "product_category",
            "target_lang", "source", "translation",
        )

        def seeded(*parts: pl.Expr) -> pl.Expr:
            return stable_hash_expr(pl.concat_str([pl.lit(str(seed)), *parts], separator="|"))

        candidates = (
            bases.join(pool_needs, on="product_category")
            .with_columns(seeded(pl.col("base_id"), pl.col("criterion").cast(pl.String), pl.col("severe").cast(pl.String)).alias("_order"))
            .sort(pools + ["_order"])
            .filter(pl.int_range(pl.len()).over(pools) < pl.col("pool_needed") * BASE_OVERSAMPLING)
            .with_columns(pl.int_ranges(0, VARIANTS).alias("variant"))
            .explode("variant", empty_as_null=False)
        )
        candidates = (
            _corrupt(candidates)
            .filter(pl.col("corrupted").is_not_null() & (pl.col("corrupted") != pl.col("translation")))
            # One text, one group: the mild and severe pools of a criterion must not share a text,
            # or the same translation would be trained with two scores (and maybe two labels).
            .unique(subset=["product_category", "criterion", "source", "corrupted"], keep="first", maintain_order=True)
            .sort(pools + ["variant", "_order"])
            .with_columns(pl.int_range(pl.len()).over(pools).alias("rank"))
        )
        made = (
            candidates.join(wanted.select(pools + ["score_bucket", "start", "needed"]), on=pools)
            .filter((pl.col("rank") >= pl.col("start")) & (pl.col("rank") < pl.col("start") + pl.col("needed")))
            .with_columns(
                (pl.col("score_bucket") + 0.5 * (seeded(pl.col("base_id"), pl.col("rank").cast(pl.String)) % 2)).alias("_score"),
            )
        )
        synthetic = with_derived_columns(
            made.with_columns(
                _scores(pl.col("_score")).alias("scores"),
                _thought().alias("thought"),
                pl.col("corrupted").alias("translation"),
                pl.concat_str(
                    "record_id", pl.lit("#synthetic-c"), pl.col("criterion").cast(pl.String),
                    pl.lit("b"), pl.col("score_bucket").cast(pl.String), pl.lit("v"), pl.col("variant").cast(pl.String),
                ).alias("record_id"),
            ),
            self.thresholds,
        ).with_columns(
            stable_id_expr(pl.concat_str("judge_version", "model", "record_id", "translation", separator="|")).alias("sample_id"),
            pl.lit(SYNTHETIC).alias("origin"),
            pl.lit(NAME).alias("synthetic_backend"),
            pl.lit(RULE_SET).alias("synthetic_model"),
        ).select(SAMPLE_COLUMNS).sort("sample_id")
        return SynthesisOutput(synthetic, _report(wanted, synthetic))


def _report(wanted: pl.DataFrame, synthetic: pl.DataFrame) -> pl.DataFrame:
    made = synthetic.group_by(GROUP_KEYS).agg(pl.len().cast(pl.Int64).alias("made"))
    return (
        wanted.join(made, on=GROUP_KEYS, how="left")
        .with_columns(pl.col("made").fill_null(0))
        .with_columns((pl.col("needed") - pl.col("made")).alias("unfilled"))
        .with_columns(
            pl.when(pl.col("unfilled") > 0)
            .then(pl.lit("not enough flawless judged translations in this category that can show this criterion"))
            .alias("why")
        )
        .select(GROUP_KEYS + ["samples", "needed", "made", "unfilled", "why"])
        .sort(GROUP_KEYS)
    )
