"""Bulk synthesis lines (core/synthesis/batch.py): Converse requests to batch input lines and batch outputs back to the
Converse answers the response cache stores, for any text."""

from __future__ import annotations

import json

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from tqc_dagster.bedrock.cache import request_key
from tqc_dagster.core.synthesis.batch import converse_answer, read_answers, request_lines
from tqc_dagster.core.synthesis.bedrock import response_text

TEXT = st.text(max_size=200)


def converse_request(prompt: str, model: str = "anthropic.claude-3-5-sonnet-20241022-v2:0") -> dict:
    return {"modelId": model, "messages": [{"role": "user", "content": [{"text": prompt}]}], "system": [{"text": "rubric"}],
            "inferenceConfig": {"maxTokens": 1024, "temperature": 0.7}}


@settings(max_examples=200, deadline=None)
@given(prompts=st.lists(TEXT, min_size=1, max_size=6))
def test_a_line_is_the_converse_request_less_its_model_keyed_by_its_cache_key(prompts):
    requests = [converse_request(prompt) for prompt in prompts]
    lines = request_lines(requests)
    assert lines.get_column("record_id").to_list() == list(dict.fromkeys(request_key(r) for r in requests))  # once each, in order
    for record_id, line, size in lines.iter_rows():
        value = json.loads(line)
        assert set(value) == {"recordId", "modelInput"} and value["recordId"] == record_id and record_id.isalnum()
        assert request_key({**value["modelInput"], "modelId": requests[0]["modelId"]}) == record_id  # the same request, so the same key
        assert size == len(line.encode()) and "\n" not in line
    assert request_lines(requests).equals(lines)  # the same requests, the same bytes


@settings(max_examples=200, deadline=None)
@given(text=TEXT, stop=st.sampled_from(["end_turn", "max_tokens", None]), tokens=st.integers(0, 10**6))
def test_an_output_line_reads_back_as_the_answer_the_online_path_would_cache(tmp_path_factory, text, stop, tokens):
    answer = converse_answer(text, stop, tokens, tokens + 1)
    path = tmp_path_factory.mktemp("out") / "part.jsonl.out"
    line = {"recordId": "a" * 64, "modelInput": {}, "modelOutput": {**answer, "metrics": {"latencyMs": 5}}}
    path.write_text(json.dumps(line, ensure_ascii=False) + "\n", encoding="utf-8")
    (row,) = read_answers([str(path)]).iter_rows(named=True)
    assert row["text"] == text and response_text(converse_answer(row["text"], row["stop_reason"], row["input_tokens"], row["output_tokens"])) == text
    assert (row["stop_reason"], row["input_tokens"], row["output_tokens"], row["error"]) == (stop, tokens, tokens + 1, None)


def test_errors_unreadable_lines_and_repeats(tmp_path):
    path = tmp_path / "part.jsonl.out"
    lines = [
        json.dumps({"recordId": "r1", "modelInput": {}, "error": {"errorCode": 429, "errorMessage": "ThrottlingException"}}),
        '{"recordId": "r2", "modelOutput": ',  # cut off: not one JSON object
        json.dumps({"recordId": "r3", "modelInput": {}, "modelOutput": converse_answer("[]", "end_turn", 1, 2)}),
        json.dumps({"recordId": "r3", "modelInput": {}, "modelOutput": converse_answer("again", "end_turn", 1, 2)}),
    ]
    path.write_text("\n".join(lines) + "\n")
    answers = read_answers([str(path)])
    assert answers.select("record_id", "text", "error").rows() == [("r1", None, "429: ThrottlingException"), ("r3", "[]", None)]
    assert read_answers([]).schema == answers.schema and read_answers([]).is_empty() and isinstance(answers, pl.DataFrame)
