"""Reading Bedrock batch-inference outputs (`.jsonl.out`) into polars frames.

Everything is vectorized: lines are read by polars, JSON is decoded by polars into a fixed
dtype, prompt fields are cut out by their delimiters with regexes (titles are not
XML-escaped, so an XML parser would reject real records). A line that cannot be read is
kept with a `parse_error` code instead of raising, so every input line is accounted for.
"""

from __future__ import annotations

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


def read_lines(files: list[str]) -> pl.DataFrame:
    """Every non-blank line of the files: `source_file`, `line_number` (1-based), `line`.

    CRLF endings are stripped; invalid UTF-8 bytes become U+FFFD rather than failing the file.
    Also returns blank lines as rows with `line = null` so callers can count them.
    """
    frames = []
    for path in files:
        try:
            lines = pl.read_lines(path, name="line")
        except pl.exceptions.ComputeError:
            with open(path, "rb") as handle:
                text = handle.read().decode("utf-8", errors="replace")
            lines = pl.DataFrame({"line": text.split("\n")[: -1 if text.endswith("\n") else None]})
        frames.append(
            lines.select(
                pl.lit(path).alias("source_file"),
                (pl.int_range(pl.len(), dtype=pl.Int64) + 1).alias("line_number"),
                pl.col("line").str.strip_suffix("\r"),
            )
        )
    if not frames:
        return pl.DataFrame(schema={"source_file": pl.String, "line_number": pl.Int64, "line": pl.String})
    return pl.concat(frames).with_columns(
        pl.when(pl.col("line").str.strip_chars() != "").then(pl.col("line")).alias("line")
    )


def _join_text(blocks: pl.Expr) -> pl.Expr:
    """Concatenate the text blocks of a content list (thinking blocks carry no `text`)."""
    return blocks.list.eval(pl.element().struct.field("text")).list.drop_nulls().list.join("")


def parse_records(lines: pl.DataFrame) -> pl.DataFrame:
    """One row per non-blank line with the record-level fields, shared by every model."""
    lines = lines.filter(pl.col("line").is_not_null())
    looks_like_object = pl.col("line").str.strip_chars().str.starts_with("{") & pl.col(
        "line"
    ).str.strip_chars().str.ends_with("}")
    candidates = lines.select(pl.when(looks_like_object).then(pl.col("line"))).to_series()
    decoded = decode_json(candidates, LINE_DTYPE).alias("record")

    output = pl.col("record").struct.field("modelOutput")
    prompt = _join_text(
        pl.col("record").struct.field("modelInput").struct.field("messages").list.first().struct.field("content")
    )
    judge_text = pl.coalesce(
        _join_text(output.struct.field("content")),
        _join_text(output.struct.field("output").struct.field("message").struct.field("content")),
    )
    usage = output.struct.field("usage")
    error = pl.col("record").struct.field("error")

    records = lines.with_columns(decoded).select(
        "source_file",
        "line_number",
        pl.col("record").struct.field("recordId").pipe(lambda rid: pl.when(rid.str.strip_chars() != "").then(rid)).alias("record_id"),
        prompt.alias("prompt"),
        pl.when(output.is_not_null()).then(judge_text).alias("judge_text"),
        pl.coalesce(output.struct.field("stop_reason"), output.struct.field("stopReason")).alias("stop_reason"),
        pl.when(error.is_not_null())
        .then(pl.concat_str(error.struct.field("errorCode"), error.struct.field("errorMessage"), separator=": ", ignore_nulls=True))
        .alias("error"),
        pl.coalesce(usage.struct.field("input_tokens"), usage.struct.field("inputTokens")).alias("input_tokens"),
        pl.coalesce(usage.struct.field("output_tokens"), usage.struct.field("outputTokens")).alias("output_tokens"),
        pl.col("record").is_null().alias("_unreadable"),
        pl.col("line").str.slice(0, EXCERPT_CHARS).alias("_line_excerpt"),
    )
    array_text = pl.col("judge_text").str.extract(JUDGE_ARRAY_PATTERN, 1)
    records = records.with_columns(
        pl.col("prompt").str.extract(TARGET_LANG, 1).alias("target_lang"),
        pl.col("prompt").str.extract(SOURCE_BLOCK, 1).str.extract(CONTENT, 1).str.strip_chars().alias("source"),
        array_text.alias("_array_text"),
    )
    entries = decode_json(records.get_column("_array_text"), JUDGE_ARRAY_DTYPE).alias("judge_entries")
    return records.with_columns(entries).with_columns(
        pl.when(pl.col("_unreadable"))
        .then(pl.lit(UNREADABLE_LINE))
        .when(pl.col("judge_text").is_null())
        .then(pl.lit(NO_MODEL_OUTPUT))
        .when(pl.col("_array_text").is_null())
        .then(pl.lit(NO_JUDGE_ARRAY))
        .when(pl.col("judge_entries").is_null())
        .then(pl.lit(INVALID_JUDGE_ARRAY))
        .alias("parse_error"),
        pl.coalesce(
            pl.when(~pl.col("_unreadable")).then(pl.coalesce("error", "judge_text").str.slice(0, EXCERPT_CHARS)),
            pl.col("_line_excerpt"),
        ).alias("excerpt"),
    ).drop("_unreadable", "_line_excerpt", "_array_text")


def judgments_for_model(records: pl.DataFrame, judge_version: str, model: str, translation_id: int) -> pl.DataFrame:
    """What the judge said about one model's translation: the `raw_judgments` rows of a partition."""
    wanted = str(translation_id)
    entry_id = pl.element().struct.field("id").str.strip_chars()
    matching = pl.col("judge_entries").list.filter(
        (entry_id == wanted) | (entry_id.cast(pl.Float64, strict=False) == float(translation_id))
    )
    entry = matching.list.first()
    block = pl.col("prompt").str.extract(translation_block_pattern(translation_id), 1)
    return records.select(
        pl.lit(judge_version).alias("judge_version"),
        pl.lit(model).alias("model"),
        "record_id",
        "source_file",
        "line_number",
        "target_lang",
        "source",
        block.str.extract(CONTENT, 1).str.strip_chars().alias("translation"),
        entry.struct.field("thought").alias("thought"),
        entry.struct.field("scores").alias("scores"),
        "stop_reason",
        "error",
        "input_tokens",
        "output_tokens",
        pl.when(pl.col("parse_error").is_null() & entry.is_null())
        .then(pl.lit(NO_ENTRY_FOR_ID))
        .otherwise(pl.col("parse_error"))
        .alias("parse_error"),
        "excerpt",
    )
