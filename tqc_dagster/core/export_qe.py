"""The QE-regression export: CSV rows for encoder quality-estimation models (COMET / CometKiwi style).

One row per sample with the judge's 7 criterion scores and one regression target, so an encoder QE model can be
trained on the same leak-free split as the small LLM checkers and compared with them.
"""

from __future__ import annotations

import polars as pl

from tqc_dagster.core.export import any_blank, language_code
from tqc_dagster.core.rubric import CRITERIA, MAX_SCORE

CRITERION_COLUMNS = [f"criterion_{i}" for i in range(len(CRITERIA))]
QE_COLUMNS = ["src", "mt", "score", *CRITERION_COLUMNS, "lp", "split"]


def qe(samples: pl.DataFrame, split: str) -> pl.DataFrame:
    """`src`, `mt`, `score` (the mean of the judge's 7 scores divided by 5: a float in [0, 1], 1 = flawless),
    `criterion_0` .. `criterion_6` (the judge's scores, 0-5, rubric order), `lp` ("en-" + the ISO 639 code of
    target_lang, e.g. en-zh; en-und when unknown: the sources are English product titles) and `split`."""
    return samples.select(
        pl.col("source").alias("src"),
        pl.col("translation").alias("mt"),
        (pl.col("scores").list.mean() / MAX_SCORE).alias("score"),
        *(pl.col("scores").list.get(i).alias(name) for i, name in enumerate(CRITERION_COLUMNS)),
        pl.concat_str(pl.lit("en-"), language_code(pl.col("target_lang"))).alias("lp"),
        pl.lit(split).alias("split"),
    )


def qe_problems(rows: pl.DataFrame) -> int:
    """Rows that break the QE contract: other columns than QE_COLUMNS (then every row), a blank src, mt or lp, a score
    outside [0, 1] or a criterion score outside [0, 5]."""
    if rows.columns != QE_COLUMNS:
        return max(rows.height, 1)
    in_range = pl.col("score").is_between(0, 1) & pl.all_horizontal(pl.col(name).is_between(0, MAX_SCORE) for name in CRITERION_COLUMNS)
    broken = any_blank(pl.col("src"), pl.col("mt"), pl.col("lp")) | ~in_range.fill_null(False)
    return rows.select(broken.sum()).item()
