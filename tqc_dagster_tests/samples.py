"""Builders for valid samples frames (data contract, section 5) from a few simple parameters.

`sample(...)` makes one row as a dict; `samples_frame(rows)` derives min_score, criterion,
score_bucket, target_model and label from the scores with the package's own
`with_derived_columns`, fills every SAMPLE_COLUMN and (by default) validates against
`schemas.Samples`, so a test starts from data the pipeline itself would accept.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from tqc_dagster.core.hashing import stable_id_expr
from tqc_dagster.core.judgments import CATEGORY_PATTERN, SAMPLE_COLUMNS, UNKNOWN_CATEGORY, Thresholds, with_derived_columns
from tqc_dagster.core.rubric import JUDGED, MAX_SCORE, N_SCORES, SYNTHETIC
from tqc_dagster.schemas import Samples

FLAWLESS = [MAX_SCORE] * N_SCORES

INPUT_SCHEMA = {
    "judge_version": pl.String,
    "model": pl.String,
    "record_id": pl.String,
    "target_lang": pl.String,
    "source": pl.String,
    "translation": pl.String,
    "thought": pl.String,
    "scores": pl.List(pl.Float64),
    "origin": pl.String,
    "synthetic_backend": pl.String,
    "synthetic_model": pl.String,
}


def scores_for(criterion: int | None, score: float = MAX_SCORE) -> list[float]:
    """Seven scores: `score` at `criterion`, 5.0 elsewhere (flawless when criterion is None)."""
    scores = list(FLAWLESS)
    if criterion is not None:
        scores[criterion] = float(score)
    return scores


def sample(
    record_id: str,
    source: str = "Lodge Cast Iron Skillet 10 Inch",
    translation: str = "Lodge 铸铁煎锅 10 英寸",
    scores: list[float] | None = None,
    *,
    judge_version: str = "v1",
    model: str = "model_a",
    target_lang: str | None = "zh-cn",
    thought: str | None = None,
    origin: str = JUDGED,
    synthetic_backend: str | None = None,
    synthetic_model: str | None = None,
) -> dict[str, Any]:
    """One sample row as a dict (the derived columns are added by `samples_frame`)."""
    if origin == SYNTHETIC and synthetic_backend is None:
        synthetic_backend, synthetic_model = "rules", synthetic_model or "rules-v1"
    return {
        "judge_version": judge_version,
        "model": model,
        "record_id": record_id,
        "target_lang": target_lang,
        "source": source,
        "translation": translation,
        "thought": thought if thought is not None else f"Judged {record_id}: the translation reads naturally.",
        "scores": [float(s) for s in (FLAWLESS if scores is None else scores)],
        "origin": origin,
        "synthetic_backend": synthetic_backend,
        "synthetic_model": synthetic_model,
    }


def samples_frame(rows: list[dict[str, Any]], thresholds: Thresholds = Thresholds(), validate: bool = True) -> pl.DataFrame:
    """A samples frame with every SAMPLE_COLUMN, in SAMPLE_COLUMNS order, sorted by record_id then model.

    sample_id is the stable id of judge_version|model|record_id, as for judged rows (with the
    translation appended for synthetic rows, as the rules backend does).
    """
    frame = pl.DataFrame(rows, schema=INPUT_SCHEMA, orient="row") if rows else pl.DataFrame(schema=INPUT_SCHEMA)
    key = pl.concat_str("judge_version", "model", "record_id", separator="|")
    frame = frame.with_columns(
        pl.when(pl.col("origin") == SYNTHETIC)
        .then(stable_id_expr(pl.concat_str(key, pl.col("translation"), separator="|")))
        .otherwise(stable_id_expr(key))
        .alias("sample_id"),
        pl.col("record_id").str.extract(CATEGORY_PATTERN, 1).fill_null(UNKNOWN_CATEGORY).alias("product_category"),
    )
    frame = with_derived_columns(frame, thresholds).select(SAMPLE_COLUMNS).sort("record_id", "model", "judge_version")
    if validate:
        Samples.validate(frame)
    return frame


def record_id(category: str, i: int, j: int = 0) -> str:
    return f"meta_{category}_{i}_{j}"
