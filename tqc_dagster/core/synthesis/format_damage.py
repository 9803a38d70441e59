"""Criterion 5 of the graded perturbations (perturbations.py): format damage, as list markers, line breaks and wrapping.

A family's text grows more broken as the bucket falls: one added mark (4), a line break (3), a 2-item list (2),
a 3-item list (1), one word per line (0); the defect text names the marks.
"""

from __future__ import annotations

import polars as pl

from tqc_dagster.core.synthesis.perturbation_frame import N, T, TOK, Family, by_language, glued, num, pick, positive, quoted

WRAPS = [("「", "」"), ("“", "”"), ("【", "】"), ("《", "》"), ("**", "**"), ('"', '"'), ("[", "]"), ("『", "』")]
HEADINGS = {"zh-cn": ["翻译：", "译文：", "标题："], "ru-ru": ["Перевод:", "Название:", "Заголовок:"], "*": ["Translation:", "Title:", "Result:"]}
CIRCLED = {i: chr(0x2460 + i - 1) for i in range(1, 21)}
LETTERS = {i: chr(ord("a") + i - 1) for i in range(1, 27)}
LIST_STYLES = 8  # see _marker
MAX_LIST_ITEMS = 20


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


def format_family(bucket: int) -> Family:
    """Criterion 5 at one score bucket: a list marker or a wrap (4), a 2-item list (3: unnumbered, 2: numbered), a
    3-item list (1), one word per line under an optional heading (0)."""
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
            opening, closing = pick([o for o, _ in WRAPS], wrap), pick([c for _, c in WRAPS], wrap)
            listed = variant < styles
            text = pl.when(listed).then(pl.concat_str(_styled(style, pl.lit(1)), pl.lit(" "), T)).otherwise(pl.concat_str(opening, T, closing))
            defect = pl.when(listed).then(pl.concat_str(pl.lit("adds 1 format mark: the list marker "), quoted(_styled(style, pl.lit(1))), pl.lit(" before the title"))).otherwise(
                pl.concat_str(pl.lit("adds 1 format mark: it wraps the title in "), quoted(pl.concat_str(opening, pl.lit("…"), closing)))
            )
            return text, defect
        if bucket in (3, 2):
            at, style = 1 + variant % gaps.clip(1), variant // gaps.clip(1)
            parts = [glued(TOK.list.head(at)), glued(TOK.list.slice(at))]
            if bucket == 3:
                defect = pl.concat_str(pl.lit("adds 2 format marks: the list marker "), quoted(_styled(style, pl.lit(1))), pl.lit(" and a line break after "), quoted(parts[0]))
            else:
                defect = pl.concat_str(pl.lit("is split into a 2-item list ("), quoted(_styled(style, pl.lit(1))), pl.lit(", "), quoted(_styled(style, pl.lit(2))), pl.lit("), one part per line"))
            return _lines(parts, style, numbered=bucket == 2), defect
        if bucket == 1:
            first, rest = variant % gaps.clip(1), variant // gaps.clip(1)
            second, style = rest % gaps.clip(1), rest // gaps.clip(1)
            cut1, cut2 = 1 + first, 1 + second
            parts = [glued(TOK.list.head(cut1)), glued(TOK.list.slice(cut1, cut2 - cut1)), glued(TOK.list.slice(cut2))]
            defect = pl.concat_str(pl.lit("is split into a 3-item list ("), pl.concat_str([quoted(_styled(style, pl.lit(i))) for i in (1, 2, 3)], separator=", "), pl.lit("), one part per line"))
            return pl.when(cut1 < cut2).then(_lines(parts, style, numbered=True)), defect
        style, heading = variant % styles, variant // styles
        lists = pl.lit(None, dtype=pl.String)
        for s in reversed(range(styles)):
            one = TOK.list.eval(pl.concat_str(_marker(s, pl.int_range(1, pl.len() + 1)), pl.lit(" "), pl.element().str.strip_chars())).list.join("\n")
            lists = pl.when(style == s).then(one).otherwise(lists)
        title = by_language(HEADINGS, positive(heading - 1))
        text = pl.when(heading == 0).then(lists).otherwise(pl.concat_str(title, pl.lit("\n"), lists))
        defect = pl.concat_str(
            pl.lit("is broken into a list of "), num(N), pl.lit(" items, one word per line, marked "), quoted(_styled(style, pl.lit(1))),
            pl.when(heading == 0).then(pl.lit("")).otherwise(pl.concat_str(pl.lit(" under the added heading "), quoted(title))),
        )
        return text, defect

    return Family(capacity, make)
