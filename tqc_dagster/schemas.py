"""pandera.polars models, one per asset: what each stored frame must look like.

Column descriptions here are the ones the Dagster UI shows.
"""

from __future__ import annotations

import pandera.polars as pa
import polars as pl

from tqc_dagster.core.judgments import QUARANTINE_REASONS
from tqc_dagster.core.rubric import LABELS, MAX_SCORE, MIN_SCORE, N_SCORES, ORIGINS, SYNTHETIC, TARGET_MODELS


class _Partitioned(pa.DataFrameModel):
    judge_version: pl.String = pa.Field(description="judge generation (config key, e.g. v1)")
    model: pl.String = pa.Field(description="translation model partition (config key, e.g. model_a)")


class _LineFields(pa.DataFrameModel):
    """Where a batch-output line came from and what its record says, shared by every model."""

    source_file: pl.String = pa.Field(description="the .jsonl.out file the line came from")
    line_number: pl.Int64 = pa.Field(ge=1, description="1-based line number in source_file")
    record_id: pl.String = pa.Field(nullable=True, description="Bedrock recordId; null when the line is unreadable or the id blank")
    target_lang: pl.String = pa.Field(nullable=True, description="target_lang of the translations in the prompt")
    source: pl.String = pa.Field(nullable=True, description="the source product title")
    stop_reason: pl.String = pa.Field(nullable=True, description="why the judge stopped (max_tokens = cut off)")
    error: pl.String = pa.Field(nullable=True, description="Bedrock's error for the record, 'code: message'")
    input_tokens: pl.Int64 = pa.Field(nullable=True, description="judge input tokens")
    output_tokens: pl.Int64 = pa.Field(nullable=True, description="judge output tokens")
    parse_error: pl.String = pa.Field(nullable=True, description="why the line or the judge array could not be read")
    excerpt: pl.String = pa.Field(nullable=True, description="first characters of the line, error or judge output")


class JudgeRecords(_LineFields):
    """One row per non-blank batch-output line of a judge version, parsed once for every model."""

    translations: pl.List(pl.Struct({"id": pl.String, "text": pl.String})) = pa.Field(nullable=True, description="each configured translation id's text in the prompt")
    judge_entries: pl.List(pl.Struct({"id": pl.String, "thought": pl.String, "scores": pl.List(pl.String), "fault": pl.String})) = pa.Field(nullable=True, description="the decoded judge array, ids and scores as text; fault: thought_not_text or scores_not_a_list")

    class Config:
        strict = True


class RawJudgments(_LineFields, _Partitioned):
    """One row per non-blank batch-output line: what the judge said about this model's translation, as found."""

    translation: pl.String = pa.Field(nullable=True, description="this model's translation, as found in the prompt")
    thought: pl.String = pa.Field(nullable=True, description="the judge's reasoning for this translation")
    scores: pl.List(pl.String) = pa.Field(nullable=True, description="the judge's scores, as found (not yet validated)")

    class Config:
        strict = True


class Samples(_Partitioned):
    """One valid sample per (judge_version, record, model): the data contract, section 5."""

    sample_id: pl.String = pa.Field(unique=True, description="stable hash of judge_version|model|record_id (and content for synthetic rows)")
    record_id: pl.String = pa.Field(description="Bedrock recordId")
    product_category: pl.String = pa.Field(description="<Category> of meta_<Category>_<i>_<j>, else 'unknown'")
    target_lang: pl.String = pa.Field(nullable=True, description="target language, e.g. zh-cn")
    source: pl.String = pa.Field(str_length={"min_value": 1}, description="source product title")
    translation: pl.String = pa.Field(str_length={"min_value": 1}, description="the model's translation")
    thought: pl.String = pa.Field(str_length={"min_value": 1}, description="the judge's chain of thought")
    scores: pl.List(pl.Float64) = pa.Field(description=f"{N_SCORES} scores in [{MIN_SCORE:g}, {MAX_SCORE:g}], one per criterion")
    min_score: pl.Float64 = pa.Field(ge=MIN_SCORE, le=MAX_SCORE, description="lowest of the scores")
    criterion: pl.Int64 = pa.Field(nullable=True, ge=0, le=N_SCORES - 1, description="index of the lowest score (first on ties); null when all are 5")
    score_bucket: pl.Int64 = pa.Field(ge=0, le=int(MAX_SCORE), description="floor of the lowest score")
    target_model: pl.String = pa.Field(isin=list(TARGET_MODELS), description="simple (criteria 0-5) or complex (6, or flawless)")
    label: pl.String = pa.Field(isin=list(LABELS), description="negative when min_score is below the target model's threshold")
    origin: pl.String = pa.Field(isin=list(ORIGINS), description="judged, or synthetic (made by a synthesis backend)")
    synthetic_backend: pl.String = pa.Field(nullable=True, description="synthesis backend for synthetic rows")
    synthetic_model: pl.String = pa.Field(nullable=True, description="model or rule set that made a synthetic row")

    @pa.dataframe_check
    def seven_scores_in_range(cls, data) -> pl.LazyFrame:
        in_range = pl.col("scores").list.eval(pl.element().is_between(MIN_SCORE, MAX_SCORE)).list.all()
        return data.lazyframe.select((pl.col("scores").list.len() == N_SCORES) & in_range)

    @pa.dataframe_check
    def derived_columns_agree(cls, data) -> pl.LazyFrame:
        flawless = pl.col("min_score") == MAX_SCORE
        criterion_ok = pl.when(flawless).then(pl.col("criterion").is_null()).otherwise(
            pl.col("criterion") == pl.col("scores").list.arg_min().cast(pl.Int64)
        )
        target_ok = (pl.col("target_model") == "simple") == (pl.col("criterion") < N_SCORES - 1).fill_null(False)
        return data.lazyframe.select(
            (pl.col("min_score") == pl.col("scores").list.min())
            & criterion_ok
            & target_ok
            & (pl.col("score_bucket") == pl.col("min_score").floor().cast(pl.Int64))
        )

    @pa.dataframe_check
    def synthetic_rows_name_their_backend(cls, data) -> pl.LazyFrame:
        return data.lazyframe.select((pl.col("origin") == SYNTHETIC) == pl.col("synthetic_backend").is_not_null())

    class Config:
        strict = True


class QuarantinedJudgments(_Partitioned):
    """One row per rejected (record, model), with a reason code from a fixed list."""

    record_id: pl.String = pa.Field(nullable=True, description="Bedrock recordId; null when the line is unreadable")
    reason: pl.String = pa.Field(isin=list(QUARANTINE_REASONS), description="reason code (see README)")
    source_file: pl.String = pa.Field(description="the .jsonl.out file of the rejected line")
    line_number: pl.Int64 = pa.Field(ge=1, description="1-based line number in source_file")
    excerpt: pl.String = pa.Field(nullable=True, description="first 200 characters of what failed")

    class Config:
        strict = True


class JudgeAgreement(pa.DataFrameModel):
    """Per pair of judge versions (agreement.judges), one row per criterion ("0".."6") and one "overall": how far they agree."""

    judge_a: pl.String = pa.Field(description="the first judge version of the pair (agreement.judges order)")
    judge_b: pl.String = pa.Field(description="the second judge version of the pair")
    criterion: pl.String = pa.Field(isin=[str(i) for i in range(N_SCORES)] + ["overall"], description="criterion index, or overall")
    criterion_name: pl.String = pa.Field(description="what the criterion checks")
    n_both: pl.Int64 = pa.Field(ge=0, description="samples judged by both versions")
    weighted_kappa: pl.Float64 = pa.Field(nullable=True, ge=-1.0, le=1.0, description="Cohen's quadratic-weighted kappa on score buckets (null when neither judge varies)")
    spearman: pl.Float64 = pa.Field(nullable=True, ge=-1.0, le=1.0, description="Spearman correlation of the scores")
    label_agreement: pl.Float64 = pa.Field(nullable=True, ge=0.0, le=1.0, description="share of pairs with the same label (overall: and the same target model)")
    negative_negative: pl.Int64 = pa.Field(ge=0, description="pairs labelled negative by both")
    negative_positive: pl.Int64 = pa.Field(ge=0, description="negative by the first judge, positive by the second")
    positive_negative: pl.Int64 = pa.Field(ge=0, description="positive by the first judge, negative by the second")
    positive_positive: pl.Int64 = pa.Field(ge=0, description="pairs labelled positive by both")

    class Config:
        strict = True
        unique = ["judge_a", "judge_b", "criterion"]


class JudgeRequests(pa.DataFrameModel):
    """One row per record a judged version asks Bedrock batch inference to judge (the lines of its request files)."""

    record_id: pl.String = pa.Field(description="Bedrock recordId, from judge_from's judge_records")
    round: pl.Int64 = pa.Field(ge=0, description="0: the first requests; 1, 2, ...: records asked again by tqc resubmit-missing")
    request_file: pl.String = pa.Field(description="the request file (.jsonl) under batch.input_uri holding the line")
    line_number: pl.Int64 = pa.Field(ge=1, description="1-based line number in request_file")
    bytes: pl.Int64 = pa.Field(ge=1, description="UTF-8 bytes of the line, without its newline")
    sha256: pl.String = pa.Field(str_length={"min_value": 64, "max_value": 64}, description="SHA-256 of request_file's content")

    class Config:
        unique = ["record_id", "round"]


class JudgeJobs(pa.DataFrameModel):
    """One row per request file of a judged version: its Bedrock batch inference job, as last seen."""

    request_file: pl.String = pa.Field(unique=True, description="the request file (.jsonl) the job reads")
    sha256: pl.String = pa.Field(description="SHA-256 of the request file's content")
    records: pl.Int64 = pa.Field(ge=1, description="records in the file")
    job_name: pl.String = pa.Field(unique=True, description="the job's name, from the content hash (tqc-<judge version>-<hash>)")
    client_token: pl.String = pa.Field(description="the clientRequestToken sent with CreateModelInvocationJob (content hash)")
    job_arn: pl.String = pa.Field(nullable=True, description="the job's ARN; null while Pending")
    status: pl.String = pa.Field(description="Bedrock's ModelInvocationJobStatus, or Pending when not submitted yet")
    message: pl.String = pa.Field(nullable=True, description="Bedrock's message (why a job failed, expired or completed partially)")
    error_records: pl.Int64 = pa.Field(nullable=True, description="errorRecordCount of the job")


class SynthesisRequests(JudgeRequests):
    """One row per round-0 synthesis request of a partition sent through Bedrock batch inference (a line of its request files)."""

    record_id: pl.String = pa.Field(description="Bedrock recordId: the Converse request's response-cache key (bedrock.cache.request_key)")
    round: pl.Int64 = pa.Field(eq=0, description="always 0: only the first round goes through batch")


class SynthesisJobs(JudgeJobs):
    """One row per request file of a partition's bulk synthesis: its Bedrock batch inference job, as last seen."""
