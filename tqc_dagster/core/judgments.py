"""From raw judge rows to valid samples and quarantined rows: the rules of the data contract, section 4.

Each raw row (one non-blank line x one model) ends up exactly once as a sample, a
quarantined row with a reason code, or a duplicate of a newer judgment of the same record.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from tqc_dagster.core import batch_outputs as bo
from tqc_dagster.core import judge_array as ja
from tqc_dagster.core.hashing import stable_id_expr
from tqc_dagster.core.rubric import COMPLEX, JUDGED, MAX_SCORE, MIN_SCORE, N_SCORES, SIMPLE, SIMPLE_CRITERIA

# The fixed list of quarantine reason codes, in the order they are tested.
QUARANTINE_REASONS: dict[str, str] = {
    "unreadable_line": "the line is not one JSON object (truncated, two records on one line, an array); "
    "its record id is the one visible in the line, if any",
    "missing_record_id": "the record has no recordId",
    "batch_error": "Bedrock reported an error for the record instead of a model output",
    "missing_model_output": "the record has neither a model output nor an error",
    "truncated_output": "the judge stopped at max_tokens (or at the context window), so its array was cut off",
    "unparseable_judge_output": "no JSON array of judge entries in the output, or it does not parse",
    "missing_judge_entry": "the judge array has no entry for this model's translation id",
    "thought_not_text": "the entry's thought is not a string (a list, object, number or boolean)",
    "empty_thought": "the entry's thought is missing or blank",
    "scores_not_a_list": "the entry's scores are not a JSON array (an object, string or number)",
    "wrong_score_count": f"the entry does not have exactly {N_SCORES} scores",
    "score_not_numeric": "a score is null or not a number",
    "score_out_of_range": f"a score is outside [{MIN_SCORE:g}, {MAX_SCORE:g}]",
    "missing_source": "the source title is missing or empty in the prompt",
    "missing_translation": "this model's translation is missing, empty or the literal None",
    "corrupt_text": "source, translation or thought holds a control character (NUL, C0 but tab and line feed, DEL, C1) "
    "or U+FFFD, the mark of bytes or escapes that did not decode",
}
# Stop reasons that mean the output was cut off: Anthropic `max_tokens` and `model_context_window_exceeded`
# (https://docs.anthropic.com/en/api/handling-stop-reasons), Converse `max_tokens` and
# `model_context_window_exceeded` (AWS API reference, Converse, stopReason).
TRUNCATING_STOP_REASONS = ["max_tokens", "model_context_window_exceeded"]
# Text that did not survive decoding: C0 controls but tab and line feed (CR is normalized to LF on
# reading), DEL, C1 controls, and U+FFFD (what invalid UTF-8 and lone surrogate escapes become).
CORRUPT_TEXT = r"[\x00-\x08\x0B-\x1F\x7F-\x9F\uFFFD]"  # the same in polars (Rust regex) and Python's re
TEXT_COLUMNS = ("source", "translation", "thought")

VALID, QUARANTINED, DUPLICATE = "valid", "quarantined", "duplicate"
SAMPLE_COLUMNS = [
    "sample_id", "judge_version", "model", "record_id", "product_category", "target_lang", "source",
    "translation", "thought", "scores", "min_score", "criterion", "score_bucket", "target_model", "label",
    "origin", "synthetic_backend", "synthetic_model",
]
CATEGORY_PATTERN = r"^meta_(.+)_\d+_\d+$"
UNKNOWN_CATEGORY = "unknown"


class Thresholds(BaseModel):
    """A sample is negative when its lowest score is below its target model's threshold, on the judge's score
    scale (core.rubric). Also the `labels` key of tqc.yaml, so the thresholds are defined here only."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    simple: float = Field(3.0, ge=MIN_SCORE, le=MAX_SCORE)
    complex: float = Field(4.0, ge=MIN_SCORE, le=MAX_SCORE)


NUMERIC_SCORES = "_numeric_scores"


def numeric_scores() -> pl.Expr:
    """The scores as floats (null where a score is not a number), computed once per row."""
    return pl.col("scores").list.eval(pl.element().str.strip_chars().cast(pl.Float64, strict=False)).alias(NUMERIC_SCORES)


def quarantine_reason() -> pl.Expr:
    """The first rule a raw row breaks, or null for a valid sample (needs the `numeric_scores()` column)."""
    scores = pl.col(NUMERIC_SCORES)
    translation = pl.col("translation").str.strip_chars()
    rules: list[tuple[str, pl.Expr]] = [
        ("unreadable_line", pl.col("parse_error") == bo.UNREADABLE_LINE),
        ("missing_record_id", pl.col("record_id").is_null() | (pl.col("record_id").str.strip_chars() == "")),
        ("batch_error", pl.col("error").is_not_null()),
        ("missing_model_output", pl.col("parse_error") == bo.NO_MODEL_OUTPUT),
        ("truncated_output", pl.col("stop_reason").is_in(TRUNCATING_STOP_REASONS)),
        ("unparseable_judge_output", pl.col("parse_error").is_in([ja.NO_JUDGE_ARRAY, ja.INVALID_JUDGE_ARRAY])),
        ("missing_judge_entry", pl.col("parse_error") == bo.NO_ENTRY_FOR_ID),
        ("thought_not_text", pl.col("parse_error") == ja.THOUGHT_NOT_TEXT),
        ("empty_thought", pl.col("thought").is_null() | (pl.col("thought").str.strip_chars() == "")),
        ("scores_not_a_list", pl.col("parse_error") == ja.SCORES_NOT_A_LIST),
        ("wrong_score_count", pl.col("scores").list.len().fill_null(0) != N_SCORES),
        ("score_not_numeric", (scores.list.drop_nulls().list.len() != N_SCORES) | scores.list.eval(pl.element().is_nan()).list.any()),
        ("score_out_of_range", (scores.list.min() < MIN_SCORE) | (scores.list.max() > MAX_SCORE)),
        ("missing_source", pl.col("source").is_null() | (pl.col("source") == "")),
        ("missing_translation", translation.is_null() | translation.is_in(["", "None"])),
        ("corrupt_text", pl.any_horizontal(pl.col(column).str.contains(CORRUPT_TEXT).fill_null(False) for column in TEXT_COLUMNS)),
    ]
    reason = pl.when(rules[0][1]).then(pl.lit(rules[0][0]))
    for code, broken in rules[1:]:
        reason = reason.when(broken).then(pl.lit(code))
    return reason.otherwise(pl.lit(None, dtype=pl.String))


def classify(raw: pl.DataFrame) -> pl.DataFrame:
    """Add `reason` and `status` (valid / quarantined / duplicate) to every raw row.

    Rows come in job order: `read_records` puts files oldest job first (by when the job ran,
    never by how a job folder's name sorts), then lines in order, so a later row is a newer
    copy. Per record the newest valid copy is kept; when no copy is valid the newest one is
    quarantined; every other copy is a duplicate. An unreadable line is quarantined on its own,
    even with the recordId seen in its text: it is not a readable copy of that record.
    """
    readable_id = pl.when(~pl.col("parse_error").eq_missing(bo.UNREADABLE_LINE)).then(pl.col("record_id"))
    ranked = (
        raw.with_columns(numeric_scores(), pl.int_range(pl.len()).alias("_order"), readable_id.alias("_copy_of"))
        .with_columns(quarantine_reason().alias("reason"))
        .sort([pl.col("reason").is_null(), "_order"], descending=True, maintain_order=True)
    )
    kept = pl.col("_copy_of").is_null() | pl.col("_copy_of").is_first_distinct()
    return ranked.with_columns(
        pl.when(~kept)
        .then(pl.lit(DUPLICATE))
        .when(pl.col("reason").is_null())
        .then(pl.lit(VALID))
        .otherwise(pl.lit(QUARANTINED))
        .alias("status")
    ).drop("_order", "_copy_of")


def with_derived_columns(frame: pl.DataFrame, thresholds: Thresholds) -> pl.DataFrame:
    """Add min_score, criterion, score_bucket, target_model and label from numeric `scores` (contract, section 4)."""
    min_score = pl.col("scores").list.min()
    criterion = pl.when(min_score < MAX_SCORE).then(pl.col("scores").list.arg_min().cast(pl.Int64))
    target_model = pl.when(criterion.is_in(SIMPLE_CRITERIA)).then(pl.lit(SIMPLE)).otherwise(pl.lit(COMPLEX))
    threshold = pl.when(target_model == SIMPLE).then(thresholds.simple).otherwise(thresholds.complex)
    # Lazy, so the repeated min/arg_min are computed once (common subexpressions).
    return frame.lazy().with_columns(
        min_score.alias("min_score"),
        criterion.alias("criterion"),
        min_score.floor().cast(pl.Int64).alias("score_bucket"),
        target_model.alias("target_model"),
        pl.when(min_score < threshold).then(pl.lit("negative")).otherwise(pl.lit("positive")).alias("label"),
    ).collect()


def to_samples(classified: pl.DataFrame, thresholds: Thresholds) -> pl.DataFrame:
    """The valid rows as samples with every column of the data contract, section 5."""
    valid = classified.filter(pl.col("status") == VALID).with_columns(
        pl.col(NUMERIC_SCORES).alias("scores"),
        pl.col("translation").str.strip_chars(),
        stable_id_expr(pl.concat_str("judge_version", "model", "record_id", separator="|")).alias("sample_id"),
        pl.col("record_id").str.extract(CATEGORY_PATTERN, 1).fill_null(UNKNOWN_CATEGORY).alias("product_category"),
        pl.lit(JUDGED).alias("origin"),
        pl.lit(None, dtype=pl.String).alias("synthetic_backend"),
        pl.lit(None, dtype=pl.String).alias("synthetic_model"),
    )
    return with_derived_columns(valid, thresholds).select(SAMPLE_COLUMNS).sort("record_id")


def to_quarantine(classified: pl.DataFrame) -> pl.DataFrame:
    """One row per rejected (record, model), with its reason and where it came from."""
    return (
        classified.filter(pl.col("status") == QUARANTINED)
        .select("judge_version", "model", "record_id", "reason", "source_file", "line_number", "excerpt")
        .sort("source_file", "line_number")
    )


@dataclass(frozen=True)
class Accounting:
    """Where every non-blank line x model went; `balanced` is the contract's identity."""

    lines: int
    valid: int
    quarantined: int
    duplicates: int

    @property
    def balanced(self) -> bool:
        return self.lines == self.valid + self.quarantined + self.duplicates

    @property
    def quarantine_rate(self) -> float:
        return self.quarantined / self.lines if self.lines else 0.0


def process(raw: pl.DataFrame, thresholds: Thresholds) -> tuple[pl.DataFrame, pl.DataFrame, Accounting]:
    """raw_judgments -> (processed_samples, quarantined_judgments, accounting)."""
    classified = classify(raw)
    samples = to_samples(classified, thresholds)
    quarantined = to_quarantine(classified)
    duplicates = classified.filter(pl.col("status") == DUPLICATE).height
    return samples, quarantined, Accounting(raw.height, samples.height, quarantined.height, duplicates)
