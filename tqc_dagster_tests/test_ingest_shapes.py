"""Issue 13, kind 1: every legal shape of every field reads as the same record, and an unreadable line still names its record.

Shapes: AWS Bedrock user guide, "Anthropic Claude Messages API" (content a string or blocks, a final
assistant message is a prefill), "Extended thinking" (thinking / redacted_thinking blocks), and the
Converse API reference (request and response bodies, reasoningContent blocks).
"""

from __future__ import annotations

import json

import polars as pl
import pytest

from tqc_dagster.core import batch_lines as bl
from tqc_dagster.core import batch_outputs as bo
from tqc_dagster.core import judgments as jd
from tqc_dagster_tests import records as rec

MODELS = {"model_a": 1, "model_b": 2}
EXPECTED = {"model_a": (rec.DEFAULT_TRANSLATIONS[1], rec.THOUGHT_A, rec.SCORES_A), "model_b": (rec.DEFAULT_TRANSLATIONS[2], rec.THOUGHT_B, rec.SCORES_B)}


def run_all(tmp_path, lines: list[str]) -> dict[str, tuple[pl.DataFrame, pl.DataFrame, jd.Accounting]]:
    """(samples, quarantined, accounting) per model of one file holding `lines`."""
    path = rec.write_lines(tmp_path / "job" / "part.jsonl.out", lines)
    records = bo.read_records([path], list(MODELS.values())).records
    return {model: jd.process(bo.judgments_for_model(records, "v1", model, i), jd.Thresholds()) for model, i in MODELS.items()}


def assert_read_as_the_default_record(tmp_path, record: dict) -> None:
    for model, (samples, quarantined, accounting) in run_all(tmp_path, [rec.line(record)]).items():
        assert quarantined.height == 0, quarantined.to_dicts()
        assert accounting.balanced and samples.height == 1
        sample = samples.row(0, named=True)
        translation, thought, scores = EXPECTED[model]
        assert (sample["record_id"], sample["source"], sample["target_lang"]) == (rec.DEFAULT_RECORD_ID, rec.DEFAULT_SOURCE, "zh-cn")
        assert (sample["translation"], sample["thought"], sample["scores"]) == (translation, thought, scores)


# --- the request body: content, prefill, Converse --------------------------------------------------

REQUEST_VARIANTS = {
    "prompt-as-string": dict(prompt_shape="string"),
    "prompt-in-two-text-blocks": dict(prompt_shape="split"),
    "image-block-before-the-prompt": dict(prompt_shape="image"),
    "prefill-as-string": dict(prefill_shape="string"),
    "no-prefill": dict(prefill=None, text=rec.judge_text()),
    "prefill-bracket": dict(prefill="[", text=rec.continuation("[")),
    "prefill-bracket-as-string": dict(prefill="[", prefill_shape="string", text=rec.continuation("[")),
    "prefill-bracket-brace": dict(prefill="[{", text=rec.continuation("[{")),
    "prefill-bracket-and-string-prompt": dict(prefill="[", prompt_shape="string", text=rec.continuation("[")),
    "converse-request": dict(request="converse"),
    "converse-request-and-response": dict(request="converse", shape="converse"),
    "converse-prefill-bracket": dict(request="converse", shape="converse", prefill="[", text=rec.continuation("[")),
}


@pytest.mark.parametrize("variant", list(REQUEST_VARIANTS.values()), ids=list(REQUEST_VARIANTS))
def test_every_request_shape_reads_as_the_same_record(tmp_path, variant):
    assert_read_as_the_default_record(tmp_path, rec.judge_record(**variant))


def test_the_judge_text_is_the_prefill_followed_by_the_output():
    fields = bl.decode_line(rec.line(rec.judge_record(prefill="[", text=rec.continuation("["))).encode())
    assert fields.judge_text == "[" + rec.continuation("[")
    assert fields.output_text == rec.continuation("[")  # the excerpt shows what the model wrote


def test_an_assistant_turn_before_the_last_user_turn_is_no_prefill(tmp_path):
    record = rec.judge_record(prefill=None, text=rec.judge_text())
    messages = record["modelInput"]["messages"]
    messages[:0] = [{"role": "user", "content": "Earlier question"}, {"role": "assistant", "content": "[ earlier answer"}]
    assert_read_as_the_default_record(tmp_path, record)


def test_the_prompt_is_the_last_user_turn(tmp_path):
    record = rec.judge_record()
    example = rec.prompt_text("Example title", {1: "例子", 2: "示例"})
    record["modelInput"]["messages"][:0] = [{"role": "user", "content": example}, {"role": "assistant", "content": "[]"}]
    assert_read_as_the_default_record(tmp_path, record)


def test_a_prompt_with_unicode_escapes_reads_like_one_without(tmp_path):
    line = json.dumps(rec.judge_record(), ensure_ascii=True)  # every non-ASCII character as \\uXXXX, tags too once escaped
    assert "\\u" in line
    assert_read_as_the_default_record(tmp_path, json.loads(line))
    escaped_tags = line.replace("<", "\\u003c").replace("/", "\\/")
    for model, (samples, _, _) in run_all(tmp_path, [escaped_tags]).items():
        assert samples.get_column("translation").to_list() == [EXPECTED[model][0]]


# --- the response body: thinking, reasoning, Converse -------------------------------------------------

RESPONSE_VARIANTS = {
    "thinking": dict(thinking=True),
    "redacted-thinking": dict(redacted_thinking=True),
    "thinking-and-redacted": dict(thinking=True, redacted_thinking=True),
    "thinking-with-prefill-bracket": dict(thinking=True, redacted_thinking=True, prefill="[", text=rec.continuation("[")),
    "converse": dict(shape="converse"),
    "converse-reasoning-content": dict(shape="converse", thinking=True),
}


@pytest.mark.parametrize("variant", list(RESPONSE_VARIANTS.values()), ids=list(RESPONSE_VARIANTS))
def test_every_response_shape_reads_as_the_same_record(tmp_path, variant):
    assert_read_as_the_default_record(tmp_path, rec.judge_record(**variant))


def test_a_converse_redacted_reasoning_block_is_skipped(tmp_path):
    record = rec.judge_record(shape="converse")
    record["modelOutput"]["output"]["message"]["content"].insert(0, {"reasoningContent": {"redactedContent": "ZW5jcnlwdGVk"}})
    assert_read_as_the_default_record(tmp_path, record)


def test_the_judge_text_split_over_two_text_blocks_is_joined(tmp_path):
    record = rec.judge_record()
    text = record["modelOutput"]["content"][0]["text"]
    record["modelOutput"]["content"] = [{"type": "text", "text": text[:40]}, {"type": "text", "text": text[40:]}]
    assert_read_as_the_default_record(tmp_path, record)


def test_fields_the_reader_does_not_need_may_hold_anything(tmp_path):
    record = rec.judge_record()
    record["modelOutput"]["usage"] = {"input_tokens": "many", "cache_read_input_tokens": [1, 2]}
    record["modelOutput"]["stop_details"] = {"type": "refusal", "nested": [[[{"x": None}]]]}
    record["modelInput"]["tools"] = [{"name": "x", "input_schema": {"type": "object"}}]
    record["jobArn"] = {"arn": 5}
    assert_read_as_the_default_record(tmp_path, record)


@pytest.mark.parametrize(
    ("usage", "tokens"),
    [
        ({"input_tokens": 812, "output_tokens": 233}, (812, 233)),
        ({"inputTokens": 812, "outputTokens": 233, "totalTokens": 1045}, (812, 233)),
        ({"input_tokens": 812.0, "output_tokens": 233.0}, (812, 233)),
        ({"input_tokens": "812", "output_tokens": None}, (None, None)),
        ({"input_tokens": 2**70, "output_tokens": True}, (None, None)),
        ("not an object", (None, None)),
    ],
    ids=["anthropic", "converse", "integral-floats", "string-and-null", "too-big-and-bool", "string"],
)
def test_token_counts_in_every_spelling(tmp_path, usage, tokens):
    record = rec.judge_record()
    record["modelOutput"]["usage"] = usage
    path = rec.write_records(tmp_path / "part.jsonl.out", [record])
    row = bo.read_records([path], [1, 2]).records.row(0, named=True)
    assert (row["input_tokens"], row["output_tokens"]) == tokens
    assert row["parse_error"] is None


@pytest.mark.parametrize(
    ("error", "text"),
    [
        ({"errorCode": 400, "errorMessage": "Malformed input request"}, "400: Malformed input request"),
        ({"errorCode": "ModelErrorException", "errorMessage": "boom"}, "ModelErrorException: boom"),
        ({"errorMessage": "no code"}, "no code"),
        ("ThrottlingException", "ThrottlingException"),
        ({"errorCode": 500, "errorMessage": ["a", "b"]}, "500"),
    ],
    ids=["code-and-message", "string-code", "message-only", "plain-string", "odd-message"],
)
def test_a_batch_error_in_every_spelling_quarantines_both_models(tmp_path, error, text):
    for samples, quarantined, accounting in run_all(tmp_path, [rec.line(rec.judge_record(error=error))]).values():
        assert samples.height == 0 and accounting.balanced
        assert quarantined.select("reason", "excerpt").rows() == [("batch_error", text)]


def test_an_error_next_to_a_model_output_is_still_a_batch_error(tmp_path):
    record = rec.judge_record()
    record["error"] = {"errorCode": 500, "errorMessage": "partial"}
    for _, quarantined, _ in run_all(tmp_path, [rec.line(record)]).values():
        assert quarantined.get_column("reason").to_list() == ["batch_error"]


def test_a_container_of_an_unexpected_type_only_affects_what_it_holds(tmp_path):
    no_messages = rec.judge_record()
    no_messages["modelInput"]["messages"] = {"role": "user"}
    odd_output = rec.judge_record("meta_All_Beauty_0_2")
    odd_output["modelOutput"]["content"] = {"text": "not a list"}
    results = run_all(tmp_path, [rec.line(no_messages), rec.line(odd_output)])
    for _, quarantined, accounting in results.values():
        assert accounting.balanced
        assert quarantined.select("record_id", "reason").rows() == [
            (rec.DEFAULT_RECORD_ID, "missing_source"),
            ("meta_All_Beauty_0_2", "missing_model_output"),
        ]


# --- the recordId of an unreadable line --------------------------------------------------------------

FULL = rec.line(rec.judge_record("meta_Home_and_Kitchen_5_5"))


@pytest.mark.parametrize(
    ("line", "record_id"),
    [
        (FULL[: len(FULL) // 3], "meta_Home_and_Kitchen_5_5"),
        (FULL + FULL, "meta_Home_and_Kitchen_5_5"),
        ("[" + FULL + "]", "meta_Home_and_Kitchen_5_5"),
        ('{"modelInput": {}, "recordId": "meta_A_\\"quoted\\"_1_2", ', 'meta_A_"quoted"_1_2'),
        ('{"recordId": "meta_A_\\ud800_1_2", "x": ', "meta_A_\ufffd_1_2"),
        ('{"recordId": "   ", "x"', None),
        ('{"recordId": "meta_A_1_', None),
        ('{"record": "meta_A_1_2"', None),
    ],
    ids=["truncated", "two-records", "in-an-array", "escaped-quotes", "lone-surrogate", "blank", "cut-inside-the-id", "other-key"],
)
def test_an_unreadable_line_keeps_the_record_id_visible_in_it(tmp_path, line, record_id):
    for _, quarantined, accounting in run_all(tmp_path, [line]).values():
        assert accounting.balanced
        assert quarantined.select("record_id", "reason").rows() == [(record_id, "unreadable_line")]


def test_an_unreadable_copy_of_a_record_is_quarantined_beside_its_readable_copy(tmp_path):
    """A truncated line is one line-level fault: it is not a readable copy, so it is neither a duplicate nor hides one."""
    lines = [FULL[:300], FULL]
    for samples, quarantined, accounting in run_all(tmp_path, lines).values():
        assert samples.get_column("record_id").to_list() == ["meta_Home_and_Kitchen_5_5"]
        assert quarantined.select("record_id", "line_number", "reason").rows() == [("meta_Home_and_Kitchen_5_5", 1, "unreadable_line")]
        assert accounting == jd.Accounting(lines=2, valid=1, quarantined=1, duplicates=0)
