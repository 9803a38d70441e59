"""Bulk synthesis through Bedrock batch inference: round 0's Converse requests as batch input lines, and the batch
outputs as the Converse answers the response cache stores.

The jobs run with modelInvocationType `Converse` (CreateModelInvocationJob; AWS user guide, "Format and upload your
batch inference data": "If you use the Converse type, the format must match the request body of the Converse API"),
so a line's `modelInput` is the very Converse request the online path sends (without `modelId`, which the job names),
for any model Converse serves, and its `modelOutput` is a Converse response ("View the results of a batch inference
job": "For Converse jobs, the format matches the response body of the Converse API").

The `recordId` of a line is the request's cache key (`bedrock.cache.request_key`, 64 hex digits): the user guide
asks for an alphanumeric string, which hex is (an older version said "11 character alphanumeric string"; the real
judge jobs this project reads used longer ids with `_`), and a record's answer goes into the cache under that same
key, so the online path finds it and pays nothing twice.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

import polars as pl

from tqc_dagster.bedrock.cache import request_key
from tqc_dagster.core.batch_files import Chunk, chunk_lines
from tqc_dagster.core.batch_lines import decode_line

ANSWER_SCHEMA = {"record_id": pl.String, "text": pl.String, "stop_reason": pl.String, "error": pl.String, "input_tokens": pl.Int64, "output_tokens": pl.Int64}


def request_lines(requests: Sequence[dict]) -> pl.DataFrame:
    """One batch input line per distinct Converse request: record_id (its cache key), line (`{"recordId", "modelInput"}`,
    compact JSON, keys sorted, so the same requests always make the same bytes) and bytes (UTF-8, without the newline);
    in request order."""
    keys = [request_key(request) for request in requests]
    lines = [
        json.dumps({"recordId": key, "modelInput": {name: value for name, value in request.items() if name != "modelId"}},
                   ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        for key, request in zip(keys, requests, strict=True)
    ]
    frame = pl.DataFrame({"record_id": keys, "line": lines}, schema={"record_id": pl.String, "line": pl.String})
    return frame.unique("record_id", keep="first", maintain_order=True).with_columns(pl.col("line").str.len_bytes().cast(pl.Int64).alias("bytes"))


def read_answers(paths: Iterable[str]) -> pl.DataFrame:
    """Every line of the batch output files at local `paths` (`ANSWER_SCHEMA`): the answer's text, stop reason, Bedrock's
    error and token counts, decoded line by line by `core.batch_lines.decode_line` (a line that is not one JSON object
    has no record_id and is left out; a record answered twice keeps its first answer)."""
    rows = [
        (fields.record_id, fields.output_text, fields.stop_reason, fields.error, fields.input_tokens, fields.output_tokens)
        for path in paths
        for lines in chunk_lines(Chunk(path))
        for fields in map(decode_line, lines)
        if fields is not None and fields.record_id is not None
    ]
    return pl.DataFrame(rows, schema=ANSWER_SCHEMA, orient="row").unique("record_id", keep="first", maintain_order=True)


def converse_answer(text: str, stop_reason: str | None, input_tokens: int | None, output_tokens: int | None) -> dict:
    """The Converse response the cache stores for an answer (the online client stores the response less its metadata)."""
    usage = {"inputTokens": input_tokens or 0, "outputTokens": output_tokens or 0}
    return {
        "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
        "stopReason": stop_reason,
        "usage": {**usage, "totalTokens": usage["inputTokens"] + usage["outputTokens"]},
    }
