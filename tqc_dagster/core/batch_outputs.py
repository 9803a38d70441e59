"""Reading Bedrock batch-inference outputs (`.jsonl.out`) into polars frames.

Everything is vectorized: lines are read by polars, JSON is decoded by polars into a fixed
dtype, prompt fields are cut out by their delimiters with regexes (titles are not
XML-escaped, so an XML parser would reject real records). A line that cannot be read is
kept with a `parse_error` code instead of raising, so every input line is accounted for.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import polars as pl

# parse_error codes, in the order the reader meets them.
UNREADABLE_LINE = "unreadable_line"  # not JSON, or not shaped like a Bedrock record
NO_MODEL_OUTPUT = "no_model_output"
NO_JUDGE_ARRAY = "no_judge_array"
INVALID_JUDGE_ARRAY = "invalid_judge_array"
NO_ENTRY_FOR_ID = "no_entry_for_id"

EXCERPT_CHARS = 200

_TEXT_BLOCKS = pl.List(pl.Struct({"type": pl.String, "text": pl.String}))
# Only the fields the pipeline needs; both the Anthropic messages body and the Converse body.
LINE_DTYPE = pl.Struct(
    {
        "recordId": pl.String,
        "modelInput": pl.Struct({"messages": pl.List(pl.Struct({"role": pl.String, "content": _TEXT_BLOCKS}))}),
        "modelOutput": pl.Struct(
            {
                "content": _TEXT_BLOCKS,
                "stop_reason": pl.String,
                "output": pl.Struct({"message": pl.Struct({"content": _TEXT_BLOCKS})}),
                "stopReason": pl.String,
                "usage": pl.Struct(
                    {
                        "input_tokens": pl.Int64,
                        "output_tokens": pl.Int64,
                        "inputTokens": pl.Int64,
                        "outputTokens": pl.Int64,
                    }
                ),
            }
        ),
        "error": pl.Struct({"errorCode": pl.String, "errorMessage": pl.String}),
    }
)
# Ids and scores are read as strings: real judges write `1` or `"1"`, `4.5` or `"4.5"`.
JUDGE_ENTRY_DTYPE = pl.Struct({"id": pl.String, "thought": pl.String, "scores": pl.List(pl.String)})
JUDGE_ARRAY_DTYPE = pl.List(JUDGE_ENTRY_DTYPE)
TRANSLATIONS_DTYPE = pl.List(pl.Struct({"id": pl.String, "text": pl.String}))
RECORD_SCHEMA = {
    "source_file": pl.String, "line_number": pl.Int64, "record_id": pl.String, "target_lang": pl.String,
    "source": pl.String, "translations": TRANSLATIONS_DTYPE, "judge_entries": JUDGE_ARRAY_DTYPE,
    "stop_reason": pl.String, "error": pl.String, "input_tokens": pl.Int64, "output_tokens": pl.Int64,
    "parse_error": pl.String, "excerpt": pl.String,
}


def _bounded_json_array_pattern() -> str:
    """A regex for a JSON array of objects nested at most three deep, strings respected.

    Finds the judge array inside a fence or before trailing prose without a JSON parser
    that tolerates trailing text (polars has none); brackets inside strings do not count.
    """
    string = r'"(?:[^"\\]|\\.)*"'
    plain = r'[^\[\]{}"]'
    level1 = rf"[\[{{](?:{plain}|{string})*[\]}}]"
    level2 = rf"[\[{{](?:{plain}|{string}|{level1})*[\]}}]"
    return rf"(?s)(\[\s*\{{(?:{plain}|{string}|{level1})*\}}(?:{plain}|{string}|{level2})*\])"


JUDGE_ARRAY_PATTERN = _bounded_json_array_pattern()
SOURCE_BLOCK = r"(?s)<source>(.*?)</source>"
CONTENT = r"(?s)<content>(.*)</content>"
TARGET_LANG = r'<translations\s+target_lang="([^"]*)"'


def translation_block_pattern(translation_id: int) -> str:
    return rf'(?s)<translation\s+id="{translation_id}"\s*>(.*?)</translation>'


def decode_json(values: pl.Series, dtype: pl.DataType) -> pl.Series:
    """Decode JSON strings into `dtype`; a value that does not decode (or is blank) becomes null.

    polars fails a whole column on one bad value, so a failing batch is bisected: good
    lines stay on the vectorized path and only the bad ones are isolated.
    """
    # polars decodes a blank string to no row at all, which would shift every later value.
    values = pl.select(pl.when(values.str.strip_chars() != "").then(values).alias(values.name)).to_series()
    return _bisect_decode(values, dtype)


def _bisect_decode(values: pl.Series, dtype: pl.DataType) -> pl.Series:
    try:
        return values.str.json_decode(dtype)
    except pl.exceptions.PolarsError:
        if len(values) <= 1:
            return pl.Series(values.name, [None] * len(values), dtype=dtype)
        middle = len(values) // 2
        # One chunk again: some polars struct kernels panic on a chunked struct column.
        return pl.concat([_bisect_decode(values[:middle], dtype), _bisect_decode(values[middle:], dtype)], rechunk=True)


def read_lines(path: str) -> pl.DataFrame:
    """Every line of one file: `line_number` (1-based) and `line`, null for a blank line.

    Invalid UTF-8 bytes become U+FFFD rather than failing the file. A trailing CR (CRLF files)
    is left in place: JSON treats it as whitespace, and copying every line to strip it is
    the single most expensive thing a reader can do here.
    """
    try:
        lines = pl.read_lines(path, name="line")
    except pl.exceptions.ComputeError:
        with open(path, "rb") as handle:
            text = handle.read().decode("utf-8", errors="replace")
        lines = pl.DataFrame({"line": text.split("\n")[: -1 if text.endswith("\n") else None]}, schema={"line": pl.String})
    return lines.select(
        (pl.int_range(pl.len(), dtype=pl.Int64) + 1).alias("line_number"),
        pl.when(pl.col("line").str.contains(r"\S")).then(pl.col("line")).alias("line"),
    )


def _join_text(blocks: pl.Expr) -> pl.Expr:
    """Concatenate the text blocks of a content list (thinking blocks carry no `text`)."""
    return blocks.list.eval(pl.element().struct.field("text")).list.drop_nulls().list.join("")


def _array_text(judge_text: pl.Series) -> pl.Series:
    """The judge array inside each output: the text itself when it is just an array, else a regex search.

    Most outputs are a bare array, so the bracket-aware regex only runs on the rest.
    """
    stripped = judge_text.str.strip_chars()
    bare = (stripped.str.contains(r"^\[\s*\{") & stripped.str.ends_with("]")).fill_null(False)
    found = stripped.zip_with(bare, pl.Series([None], dtype=pl.String))
    others = (~bare & stripped.is_not_null()).arg_true()
    return found.scatter(others, stripped.gather(others).str.extract(JUDGE_ARRAY_PATTERN, 1)) if len(others) else found


def _translation(translation_id: int) -> pl.Expr:
    """One translation's text, cut out of the prompt by its delimiters."""
    return pl.col("_prompt").str.extract(translation_block_pattern(translation_id), 1).str.extract(CONTENT, 1).str.strip_chars()


def parse_lines(lines: pl.DataFrame, translation_ids: Sequence[int]) -> pl.DataFrame:
    """Judge records of one file's lines: one row per non-blank line, every field all models share.

    `translations` holds each configured translation id's text from the prompt; `judge_entries`
    the decoded judge array (ids and scores as strings).
    """
    lines = lines.filter(pl.col("line").is_not_null())
    line = pl.col("line")
    looks_like_object = line.str.starts_with("{") & (line.str.ends_with("}") | line.str.ends_with("}\r"))
    candidates = lines.select(pl.when(looks_like_object).then(line)).to_series()
    record = decode_json(candidates, LINE_DTYPE)

    output = pl.col("record").struct.field("modelOutput")
    usage = output.struct.field("usage")
    error = pl.col("record").struct.field("error")
    record_id = pl.col("record").struct.field("recordId")
    prompt = _join_text(pl.col("record").struct.field("modelInput").struct.field("messages").list.first().struct.field("content"))
    judge_text = pl.coalesce(
        _join_text(output.struct.field("content")),
        _join_text(output.struct.field("output").struct.field("message").struct.field("content")),
    )
    fields = lines.with_columns(record.alias("record")).select(
        "line_number",
        pl.when(record_id.str.strip_chars() != "").then(record_id).alias("record_id"),
        prompt.alias("_prompt"),
        pl.when(output.is_not_null()).then(judge_text).alias("_judge_text"),
        pl.coalesce(output.struct.field("stop_reason"), output.struct.field("stopReason")).alias("stop_reason"),
        pl.when(error.is_not_null())
        .then(pl.concat_str(error.struct.field("errorCode"), error.struct.field("errorMessage"), separator=": ", ignore_nulls=True))
        .alias("error"),
        pl.coalesce(usage.struct.field("input_tokens"), usage.struct.field("inputTokens")).alias("input_tokens"),
        pl.coalesce(usage.struct.field("output_tokens"), usage.struct.field("outputTokens")).alias("output_tokens"),
        pl.col("record").is_null().alias("_unreadable"),
        line.str.slice(0, EXCERPT_CHARS).str.strip_suffix("\r").alias("_line_excerpt"),
    )
    array_text = _array_text(fields.get_column("_judge_text"))
    entries = decode_json(array_text, JUDGE_ARRAY_DTYPE)
    return fields.with_columns(
        entries.alias("judge_entries"),
        pl.col("_prompt").str.extract(TARGET_LANG, 1).alias("target_lang"),
        pl.col("_prompt").str.extract(SOURCE_BLOCK, 1).str.extract(CONTENT, 1).str.strip_chars().alias("source"),
        pl.concat_list([pl.struct(pl.lit(str(i)).alias("id"), _translation(i).alias("text")) for i in translation_ids]).alias("translations"),
        pl.when(pl.col("_unreadable"))
        .then(pl.lit(UNREADABLE_LINE))
        .when(pl.col("_judge_text").is_null())
        .then(pl.lit(NO_MODEL_OUTPUT))
        .when(array_text.is_null())
        .then(pl.lit(NO_JUDGE_ARRAY))
        .when(entries.is_null())
        .then(pl.lit(INVALID_JUDGE_ARRAY))
        .alias("parse_error"),
        pl.coalesce(
            pl.when(~pl.col("_unreadable")).then(pl.coalesce("error", "_judge_text").str.slice(0, EXCERPT_CHARS)),
            pl.col("_line_excerpt"),
        ).alias("excerpt"),
    ).select(RECORD_COLUMNS[1:])


RECORD_COLUMNS = [
    "source_file", "line_number", "record_id", "target_lang", "source", "translations", "judge_entries",
    "stop_reason", "error", "input_tokens", "output_tokens", "parse_error", "excerpt",
]


@dataclass(frozen=True)
class ReadResult:
    records: pl.DataFrame
    blank_lines: int


READ_WORKERS = 2  # files parsed at once: polars releases the GIL, so two files use both cores
SLICE_LINES = 50_000  # lines decoded at a time: bounds the memory a large file needs while it is parsed


def read_records(
    files: Sequence[str],
    translation_ids: Sequence[int],
    local_copy: Callable[[str], AbstractContextManager[str]] = nullcontext,
) -> ReadResult:
    """Judge records of every file, `READ_WORKERS` files at a time, so memory holds a few files' lines at most.

    `local_copy(uri)` gives a local path for a file (an S3 object is streamed to a temporary
    file); `source_file` keeps the URI.
    """

    def read_one(uri: str) -> tuple[pl.DataFrame, int]:
        with local_copy(uri) as path:
            lines = read_lines(path)
        parts = [parse_lines(lines.slice(start, SLICE_LINES), translation_ids) for start in range(0, lines.height, SLICE_LINES)]
        records = pl.concat(parts) if parts else pl.DataFrame(schema={k: v for k, v in RECORD_SCHEMA.items() if k != "source_file"})
        return records.select(pl.lit(uri).alias("source_file"), pl.all()), lines.get_column("line").null_count()

    with ThreadPoolExecutor(max_workers=READ_WORKERS) as pool:
        results = list(pool.map(read_one, files))
    if not results:
        return ReadResult(pl.DataFrame(schema=RECORD_SCHEMA), 0)
    return ReadResult(pl.concat([records for records, _ in results]), sum(blank for _, blank in results))


def judgments_for_model(records: pl.DataFrame, judge_version: str, model: str, translation_id: int) -> pl.DataFrame:
    """What the judge said about one model's translation: the `raw_judgments` rows of a partition."""
    wanted = str(translation_id)
    # The first entry whose id is this translation's ("1", 1, "1.0"); arg_max of the hits is
    # several times faster than list.filter on half a million arrays.
    hits = pl.col("judge_entries").list.eval(pl.element().struct.field("id").str.strip_chars().is_in([wanted, f"{wanted}.0"]))
    entry = pl.when(hits.list.any()).then(pl.col("judge_entries").list.get(hits.list.arg_max(), null_on_oob=True))
    translation = pl.col("translations").list.filter(pl.element().struct.field("id") == wanted).list.first().struct.field("text")
    return records.with_columns(entry.alias("_entry")).select(
        pl.lit(judge_version).alias("judge_version"),
        pl.lit(model).alias("model"),
        "record_id",
        "source_file",
        "line_number",
        "target_lang",
        "source",
        translation.alias("translation"),
        pl.col("_entry").struct.field("thought").alias("thought"),
        pl.col("_entry").struct.field("scores").alias("scores"),
        "stop_reason",
        "error",
        "input_tokens",
        "output_tokens",
        pl.when(pl.col("parse_error").is_null() & pl.col("_entry").is_null())
        .then(pl.lit(NO_ENTRY_FOR_ID))
        .otherwise(pl.col("parse_error"))
        .alias("parse_error"),
        "excerpt",
    )
