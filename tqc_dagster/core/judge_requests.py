"""Batch inference requests of a judged version: one JSONL line per record, cut into job files.

From the `judge_records` of the version named by `judge_from` (columns of `batch_outputs.RECORD_SCHEMA`)
to lines `{"recordId": ..., "modelInput": <Anthropic Messages body>}` (AWS user guide, "Format and upload
your batch inference data"; body: "Anthropic Claude Messages API"), then to files that respect the
batch quotas (records per file, bytes per file, minimum records per job; config.JudgeBatch cites them).
Pure polars: the prompt is rendered with `concat_str` over the template's parts, the line with
`struct.json_encode`.
"""

from __future__ import annotations

import hashlib
import math
import string
from collections.abc import Sequence

import polars as pl

from tqc_dagster.core import batch_outputs as bo

# Why a judge record cannot become a request (it is named in the asset's metadata, never dropped silently).
SKIP_REASONS = {
    "unreadable_line": "the line of judge_from's outputs is not one JSON object",
    "missing_record_id": "the record has no recordId",
    "missing_source": "the source title is missing or empty in the prompt",
    "missing_target_lang": "the prompt has no <translations target_lang=...>",
}
REQUEST_SCHEMA = {"record_id": pl.String, "line": pl.String, "prompt_bytes": pl.Int64, "bytes": pl.Int64}
SKIPPED_SCHEMA = {"record_id": pl.String, "source_file": pl.String, "line_number": pl.Int64, "reason": pl.String}
DEFAULT_TRANSLATOR = "machine"


class RequestError(ValueError):
    """Requests that cannot be submitted as they are (too few records for one job, a record larger than a file)."""


def render(template: str, values: dict[str, pl.Expr]) -> pl.Expr:
    """A str.format template as one string expression: literal parts and the named columns, in order."""
    parts: list[pl.Expr] = []
    for literal, field, _, _ in string.Formatter().parse(template):
        if literal:
            parts.append(pl.lit(literal))
        if field is not None:
            parts.append(values[field].fill_null(""))
    return pl.concat_str(parts) if parts else pl.lit("")


def _translation_text(translation_id: int) -> pl.Expr:
    return (
        pl.col("translations")
        .list.eval(pl.element().filter(pl.element().struct.field("id") == str(translation_id)).struct.field("text"))
        .list.first()
    )


def prompt_expr(user_template: str, translation_template: str, translators: dict[int, str], translation_ids: Sequence[int]) -> pl.Expr:
    """The user turn of each record (needs `source`, `target_lang`, `translations`); a missing translation renders empty."""
    blocks = [
        render(translation_template, {"id": pl.lit(str(i)), "translator": pl.lit(translators.get(i, DEFAULT_TRANSLATOR)), "text": _translation_text(i)})
        for i in sorted(translation_ids)
    ]
    translations = pl.concat_str(blocks) if blocks else pl.lit("")
    return render(user_template, {"source": pl.col("source"), "target_lang": pl.col("target_lang"), "translations": translations})


def line_expr(prompt, user_turn: pl.Expr) -> pl.Expr:
    """One JSONL line per record: recordId and the Anthropic Messages body, with the prefill as a last assistant turn.

    `prompt` is a config.JudgePrompt (system, prefill, stop_sequences, max_tokens); `user_turn` its `prompt_expr`.
    """
    text = lambda value: pl.struct(type=pl.lit("text"), text=value)  # noqa: E731
    messages = [pl.struct(role=pl.lit("user"), content=pl.concat_list(text(user_turn)))]
    if prompt.prefill:
        messages.append(pl.struct(role=pl.lit("assistant"), content=pl.concat_list(text(pl.lit(prompt.prefill)))))
    body = pl.struct(
        anthropic_version=pl.lit(prompt.anthropic_version),
        max_tokens=pl.lit(prompt.max_tokens, dtype=pl.Int64),
        stop_sequences=pl.lit(list(prompt.stop_sequences), dtype=pl.List(pl.String)),
        system=pl.lit(prompt.system),
        messages=pl.concat_list(messages),
    )
    return pl.struct(recordId=pl.col("record_id"), modelInput=body).struct.json_encode()


def skip_reason() -> pl.Expr:
    """The first reason a judge record cannot become a request, else null."""
    rules = [
        ("unreadable_line", pl.col("parse_error") == bo.UNREADABLE_LINE),
        ("missing_record_id", pl.col("record_id").is_null() | (pl.col("record_id").str.strip_chars() == "")),
        ("missing_source", pl.col("source").is_null() | (pl.col("source") == "")),
        ("missing_target_lang", pl.col("target_lang").is_null()),
    ]
    reason = pl.when(rules[0][1]).then(pl.lit(rules[0][0]))
    for code, broken in rules[1:]:
        reason = reason.when(broken).then(pl.lit(code))
    return reason.otherwise(pl.lit(None, dtype=pl.String))


def build_requests(records: pl.DataFrame, prompt, translation_ids: Sequence[int]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(requests, skipped) from judge_from's judge_records.

    requests: one row per distinct record id (`REQUEST_SCHEMA`; `bytes` of the UTF-8 line without its newline,
    `prompt_bytes` of its user turn),
    sorted by record id, from the first usable copy in job order (a re-run copy repeats the same prompt).
    skipped: one row per judge record that cannot be asked (`SKIPPED_SCHEMA`, reason from `SKIP_REASONS`)
    whose record id has no usable copy; copies of a record that is asked are not listed.
    """
    marked = records.lazy().with_columns(skip_reason().alias("reason"))
    usable = marked.filter(pl.col("reason").is_null()).unique("record_id", keep="first", maintain_order=True)
    user_turn = prompt_expr(prompt.user_template, prompt.translation_template, prompt.translators, translation_ids)
    requests = (
        usable.select("record_id", line_expr(prompt, user_turn).alias("line"), user_turn.str.len_bytes().cast(pl.Int64).alias("prompt_bytes"))
        .with_columns(pl.col("line").str.len_bytes().cast(pl.Int64).alias("bytes"))
        .sort("record_id")
        .collect()
    )
    skipped = (
        marked.filter(pl.col("reason").is_not_null())
        .join(usable.select("record_id"), on="record_id", how="anti", nulls_equal=False)
        .select(list(SKIPPED_SCHEMA))
        .collect()
    )
    return requests, skipped


def cut_files(requests: pl.DataFrame, records_per_file: int, max_file_bytes: int, min_records: int) -> pl.DataFrame:
    """`requests` with `file` (0-based) and `line_number` (1-based in its file): the fewest files of at most
    `records_per_file` records and `max_file_bytes` bytes (newlines counted), record counts differing by at most one.

    Raises RequestError when there are fewer than `min_records` records (Bedrock refuses the job), when one line
    alone is larger than a file may be, or when the cut leaves a file below `min_records`.
    """
    n = requests.height
    if n < min_records:
        raise RequestError(f"{n} records to judge, fewer than the {min_records} a batch inference job needs (min_records_per_job)")
    if n and requests.get_column("bytes").max() + 1 > max_file_bytes:
        raise RequestError(f"a request line of {requests.get_column('bytes').max() + 1} bytes exceeds max_file_bytes ({max_file_bytes})")
    total = int(requests.get_column("bytes").sum()) + n
    files = max(1, math.ceil(n / records_per_file), math.ceil(total / max_file_bytes))
    while True:  # over file counts, not rows: a byte-heavy stretch can need one file more than the average says
        cut = requests.with_row_index("_row").with_columns(((pl.col("_row") * files) // max(n, 1)).cast(pl.Int64).alias("file"))
        largest = cut.group_by("file").agg((pl.col("bytes") + 1).sum()).get_column("bytes").max() if n else 0
        if largest <= max_file_bytes:
            break
        files += 1
    if n // files < min_records:
        raise RequestError(f"cutting {n} records into {files} files of at most {max_file_bytes} bytes leaves files below min_records_per_job ({min_records})")
    return cut.with_columns((pl.int_range(pl.len()).over("file") + 1).cast(pl.Int64).alias("line_number")).drop("_row")


def file_contents(cut: pl.DataFrame) -> list[tuple[int, bytes, str]]:
    """(file index, the file's bytes, its SHA-256 hex) per file of `cut_files`, lines joined by LF with a final LF."""
    joined = cut.group_by("file", maintain_order=True).agg(pl.col("line").str.join("\n")).sort("file")
    result = []
    for index, text in joined.iter_rows():  # one row per file (a handful), not per record
        data = (text + "\n").encode("utf-8")
        result.append((index, data, hashlib.sha256(data).hexdigest()))
    return result


def file_name(index: int, files: int, digest: str) -> str:
    """`part-00000-of-00003-<12 hex of the content hash>.jsonl`: Bedrock reads files ending in .jsonl."""
    return f"part-{index:05d}-of-{files:05d}-{digest[:12]}.jsonl"


def missing_from_output(records: pl.DataFrame, requests: pl.DataFrame) -> pl.DataFrame:
    """Rows for the requested records no output line names (`bo.RECORD_SCHEMA`, parse_error `missing_from_output`).

    `records` are the judged version's judge_records as read from its outputs, `requests` its judge_requests
    (record_id, request_file, line_number, round). A missing row points at the latest request line that asked it.
    """
    seen = records.select("record_id").drop_nulls()
    latest = requests.sort("round").unique("record_id", keep="last")  # a record asked again: its latest request
    missing = latest.join(seen, on="record_id", how="anti").sort("request_file", "line_number")
    return missing.select(
        pl.col("request_file").alias("source_file"), "line_number", "record_id",
        *(pl.lit(None, dtype).alias(name) for name, dtype in bo.RECORD_SCHEMA.items() if name not in ("source_file", "line_number", "record_id", "parse_error", "excerpt")),
        pl.lit(bo.MISSING_FROM_OUTPUT).alias("parse_error"),
        pl.lit("asked in a batch job; no output file of the judge version has a line for this record").alias("excerpt"),
    ).select(bo.RECORD_COLUMNS)


NOT_ANSWERED = (bo.NO_MODEL_OUTPUT, bo.MISSING_FROM_OUTPUT, bo.UNREADABLE_LINE)


def unanswered(records: pl.DataFrame, requests: pl.DataFrame) -> pl.Series:
    """Record ids asked (`requests`) that no line of the judged version's judge_records answers: missing from every
    output, or only Bedrock errors or unreadable lines. A reply cut at max_tokens is an answer (asking again with the
    same max_tokens would cut it again). Sorted."""
    answered = records.filter(pl.col("error").is_null() & ~pl.col("parse_error").fill_null("").is_in(NOT_ANSWERED)).select("record_id")
    return requests.select("record_id").unique().join(answered.drop_nulls(), on="record_id", how="anti").get_column("record_id").sort()


def files_off_quota(requests: pl.DataFrame, records_per_file: int, max_file_bytes: int, min_records: int) -> pl.DataFrame:
    """The request files of a stored judge_requests (record_id, request_file, bytes) past a batch quota: more than
    `records_per_file` records, more than `max_file_bytes` bytes (newlines counted), or fewer than `min_records`.
    Columns request_file, records, bytes, problem; empty when every file is within the quotas."""
    per_file = requests.group_by("request_file").agg(pl.len().cast(pl.Int64).alias("records"), (pl.col("bytes") + 1).sum().alias("bytes"))
    problem = (
        pl.when(pl.col("records") > records_per_file).then(pl.lit(f"more than {records_per_file} records (records_per_file)"))
        .when(pl.col("bytes") > max_file_bytes).then(pl.lit(f"more than {max_file_bytes} bytes (max_file_bytes)"))
        .when(pl.col("records") < min_records).then(pl.lit(f"fewer than {min_records} records (min_records_per_job)"))
    )
    return per_file.with_columns(problem.alias("problem")).drop_nulls("problem").sort("request_file")
