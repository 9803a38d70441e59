"""The reader of Bedrock batch outputs: every input variant of data contract section 2, line by line."""

from __future__ import annotations

from contextlib import nullcontext

import re

import polars as pl
import pytest
from hypothesis import given, settings, strategies as st

from tqc_dagster.core import batch_lines as bl
from tqc_dagster.core import batch_outputs as bo
from tqc_dagster.core import judge_array as ja
from tqc_dagster.schemas import RawJudgments
from tqc_dagster_tests import records as rec

MODELS = {"model_a": 1, "model_b": 2}


def parse(files: list[str]) -> pl.DataFrame:
    return bo.read_records(files, list(MODELS.values())).records


def raw_for(files: list[str], model: str = "model_a", judge_version: str = "v1") -> pl.DataFrame:
    return bo.judgments_for_model(parse(files), judge_version, model, MODELS[model])


def only_row(frame: pl.DataFrame) -> dict:
    assert frame.height == 1, frame
    return frame.row(0, named=True)


def as_floats(scores: list[str]) -> list[float]:
    return [float(score) for score in scores]


def write_one(tmp_path, record: dict, name: str = "part-0.jsonl.out") -> list[str]:
    return [rec.write_records(tmp_path / name, [record])]


# --- lines and files ------------------------------------------------------------------------------


def lines_of(path: str) -> list[bytes]:
    return [line for chunk in bo.chunks(path) for batch in bo.chunk_lines(chunk) for line in batch]


def test_lines_are_split_on_newlines_and_blank_lines_are_counted_not_read(tmp_path):
    path = rec.write_lines(tmp_path / "a.jsonl.out", ["first", "", "   \t ", "fourth"])
    assert lines_of(path) == [b"first", b"", b"   \t ", b"fourth"]
    read = bo.read_records([path], [1, 2])
    assert read.records.select("line_number", "parse_error").rows() == [(1, bo.UNREADABLE_LINE), (4, bo.UNREADABLE_LINE)]
    assert read.blank_lines == 2


def test_crlf_lines_keep_their_numbering_and_blank_lines(tmp_path):
    path = rec.write_lines(tmp_path / "crlf.jsonl.out", ["one", "two", "", "three"], newline="\r\n")
    read = bo.read_records([path], [1, 2])
    assert read.records.select("line_number", "excerpt").rows() == [(1, "one"), (2, "two"), (4, "three")]
    assert read.blank_lines == 1


def test_crlf_records_parse_like_lf_records(tmp_path):
    lines = [rec.line(rec.judge_record("meta_All_Beauty_0_1")), rec.line(rec.judge_record("meta_All_Beauty_0_2"))]
    lf = rec.write_lines(tmp_path / "lf" / "a.jsonl.out", lines)
    crlf = rec.write_lines(tmp_path / "crlf" / "a.jsonl.out", lines, newline="\r\n")
    assert parse([crlf]).drop("source_file").equals(parse([lf]).drop("source_file"))


def test_last_line_without_newline_is_read(tmp_path):
    path = rec.write_lines(tmp_path / "a.jsonl.out", ["one", "two"], trailing=False)
    assert lines_of(path) == [b"one", b"two"]
    assert parse([path]).get_column("line_number").to_list() == [1, 2]


def test_invalid_utf8_becomes_replacement_char_and_keeps_other_lines(tmp_path):
    path = tmp_path / "bad.jsonl.out"
    path.write_bytes(b"good\nba\xffd\n\xc3\r\nlast\n")
    records = parse([str(path)])
    assert records.select("line_number", "excerpt").rows() == [(1, "good"), (2, "ba\ufffdd"), (3, "\ufffd"), (4, "last")]


def test_read_records_several_files_keep_their_own_numbering_and_count_blank_lines(tmp_path):
    first = rec.write_lines(tmp_path / "job1" / "a.jsonl.out", ["x", "", "y"])
    second = rec.write_lines(tmp_path / "job2" / "a.jsonl.out", ["z"])
    read = bo.read_records([first, second], [1, 2])
    assert read.records.select("source_file", "line_number").rows() == [(first, 1), (first, 3), (second, 1)]
    assert read.blank_lines == 1


def test_read_records_names_rows_by_the_given_uri(tmp_path):
    path = rec.write_records(tmp_path / "a.jsonl.out", [rec.judge_record()])
    read = bo.read_records(["s3://bucket/job/a.jsonl.out"], [1, 2], local_copy=lambda uri: nullcontext(path))
    assert read.records.get_column("source_file").to_list() == ["s3://bucket/job/a.jsonl.out"]


def test_read_records_of_no_files_is_an_empty_typed_frame():
    read = bo.read_records([], [1, 2])
    assert read.records.height == 0 and read.blank_lines == 0
    assert read.records.schema == pl.Schema(bo.RECORD_SCHEMA)


def test_empty_file_has_no_rows(tmp_path):
    path = tmp_path / "empty.jsonl.out"
    path.write_bytes(b"")
    read = bo.read_records([str(path)], [1, 2])
    assert read.records.height == 0 and read.blank_lines == 0


# --- valid variants of section 2 -------------------------------------------------------------


def test_anthropic_body_parses_every_field(tmp_path):
    files = write_one(tmp_path, rec.judge_record())
    record = only_row(parse(files))
    assert record["record_id"] == rec.DEFAULT_RECORD_ID
    assert record["source_file"] == files[0]
    assert record["line_number"] == 1
    assert record["target_lang"] == "zh-cn"
    assert record["source"] == rec.DEFAULT_SOURCE
    assert record["stop_reason"] == "stop_sequence"
    assert record["error"] is None
    assert (record["input_tokens"], record["output_tokens"]) == (812, 233)
    assert record["parse_error"] is None
    assert record["excerpt"] == rec.judge_text()[: bo.EXCERPT_CHARS]

    a = only_row(raw_for(files, "model_a"))
    assert a["judge_version"] == "v1" and a["model"] == "model_a"
    assert a["translation"] == rec.DEFAULT_TRANSLATIONS[1]
    assert a["thought"] == rec.THOUGHT_A
    assert as_floats(a["scores"]) == rec.SCORES_A
    assert a["parse_error"] is None

    b = only_row(raw_for(files, "model_b"))
    assert b["model"] == "model_b"
    assert b["translation"] == rec.DEFAULT_TRANSLATIONS[2]
    assert b["thought"] == rec.THOUGHT_B
    assert as_floats(b["scores"]) == rec.SCORES_B


def test_converse_body_parses_text_stop_reason_and_usage(tmp_path):
    files = write_one(tmp_path, rec.judge_record(shape="converse"))
    record = only_row(parse(files))
    assert record["stop_reason"] == "end_turn"
    assert (record["input_tokens"], record["output_tokens"]) == (812, 233)
    assert record["parse_error"] is None
    a = only_row(raw_for(files, "model_a"))
    assert a["thought"] == rec.THOUGHT_A and as_floats(a["scores"]) == rec.SCORES_A
    b = only_row(raw_for(files, "model_b"))
    assert b["thought"] == rec.THOUGHT_B and as_floats(b["scores"]) == rec.SCORES_B


def test_converse_body_max_tokens_stop_reason_is_read(tmp_path):
    files = write_one(tmp_path, rec.judge_record(shape="converse", stop_reason="max_tokens"))
    assert only_row(parse(files))["stop_reason"] == "max_tokens"


@pytest.mark.parametrize(
    ("thinking", "redacted"), [(True, False), (False, True), (True, True)], ids=["thinking", "redacted", "both"]
)
def test_thinking_blocks_before_the_text_block_are_ignored(tmp_path, thinking, redacted):
    files = write_one(tmp_path, rec.judge_record(thinking=thinking, redacted_thinking=redacted))
    record = only_row(parse(files))
    assert record["parse_error"] is None
    assert record["excerpt"] == rec.judge_text()[: bo.EXCERPT_CHARS]  # the excerpt is the start of the text block
    a = only_row(raw_for(files, "model_a"))
    assert a["thought"] == rec.THOUGHT_A and as_floats(a["scores"]) == rec.SCORES_A


def test_converse_reasoning_block_before_the_text_block_is_ignored(tmp_path):
    files = write_one(tmp_path, rec.judge_record(shape="converse", thinking=True))
    assert only_row(parse(files))["excerpt"] == rec.judge_text()[: bo.EXCERPT_CHARS]
    assert only_row(raw_for(files, "model_b"))["thought"] == rec.THOUGHT_B


def test_fenced_array_followed_by_prose_with_brackets(tmp_path):
    prose = 'Note: criterion [4] (units) was weighed as {"weight": 2}; see [1], [2] and ] } stray ["x"].'
    files = write_one(tmp_path, rec.judge_record(fence=True, prose=prose))
    record = only_row(parse(files))
    assert record["parse_error"] is None
    assert [e["id"] for e in record["judge_entries"]] == ["1", "2"]
    a = only_row(raw_for(files, "model_a"))
    assert a["thought"] == rec.THOUGHT_A and as_floats(a["scores"]) == rec.SCORES_A
    b = only_row(raw_for(files, "model_b"))
    assert b["thought"] == rec.THOUGHT_B and as_floats(b["scores"]) == rec.SCORES_B


def test_prose_with_brackets_before_the_array_is_skipped(tmp_path):
    text = "Here is my evaluation [per translation]:\n" + rec.judge_text(fence=True, prose="Done [ok].")
    files = write_one(tmp_path, rec.judge_record(text=text))
    a = only_row(raw_for(files, "model_a"))
    assert a["parse_error"] is None and as_floats(a["scores"]) == rec.SCORES_A


def test_string_ids_are_matched(tmp_path):
    files = write_one(tmp_path, rec.judge_record(string_ids=True))
    assert only_row(raw_for(files, "model_a"))["thought"] == rec.THOUGHT_A
    assert only_row(raw_for(files, "model_b"))["thought"] == rec.THOUGHT_B


@pytest.mark.parametrize("spelled", ["2", " 2 ", "2.0", 2.0])
def test_id_spellings_match_the_translation_id(tmp_path, spelled):
    entries = [rec.entry(1, rec.THOUGHT_A, rec.SCORES_A), rec.entry(spelled, rec.THOUGHT_B, rec.SCORES_B)]
    files = write_one(tmp_path, rec.judge_record(entries=entries))
    b = only_row(raw_for(files, "model_b"))
    assert b["parse_error"] is None and b["thought"] == rec.THOUGHT_B


def test_numeric_string_scores_are_read(tmp_path):
    files = write_one(tmp_path, rec.judge_record(string_scores=True, string_ids=True))
    a = only_row(raw_for(files, "model_a"))
    assert a["scores"] == [str(score) for score in rec.SCORES_A]
    assert as_floats(a["scores"]) == rec.SCORES_A


def test_entries_in_reverse_order_go_to_the_right_model(tmp_path):
    files = write_one(tmp_path, rec.judge_record(reverse=True))
    assert [e["id"] for e in only_row(parse(files))["judge_entries"]] == ["2", "1"]
    a = only_row(raw_for(files, "model_a"))
    b = only_row(raw_for(files, "model_b"))
    assert (a["thought"], as_floats(a["scores"])) == (rec.THOUGHT_A, rec.SCORES_A)
    assert (b["thought"], as_floats(b["scores"])) == (rec.THOUGHT_B, rec.SCORES_B)


@pytest.mark.parametrize("fence", [False, True])
def test_pretty_printed_array_is_read(tmp_path, fence):
    files = write_one(tmp_path, rec.judge_record(indent=2, fence=fence, prose="[end]" if fence else None))
    assert "\n  {" in only_row(parse(files))["excerpt"]
    a = only_row(raw_for(files, "model_a"))
    assert a["thought"] == rec.THOUGHT_A and as_floats(a["scores"]) == rec.SCORES_A


def test_unescaped_ampersand_and_angle_brackets_in_titles(tmp_path):
    source = 'Salt & Pepper Grinder <Set of 2> 3 < 4 > 2 "Deluxe" Cable <2m>'
    translations = {1: "盐 & 胡椒研磨器 <2件套> 数据线 <2m>", 2: "Cable <2m> & <b>粗体</b>"}
    files = write_one(tmp_path, rec.judge_record(source=source, translations=translations))
    a = only_row(raw_for(files, "model_a"))
    b = only_row(raw_for(files, "model_b"))
    assert a["source"] == source
    assert a["translation"] == translations[1]
    assert b["translation"] == translations[2]


def test_title_cable_2m_in_angle_brackets(tmp_path):
    files = write_one(tmp_path, rec.judge_record(source="Cable <2m>", translations={1: "数据线 <2m>", 2: "线缆 <2米>"}))
    a = only_row(raw_for(files, "model_a"))
    assert (a["source"], a["translation"]) == ("Cable <2m>", "数据线 <2m>")
    assert only_row(raw_for(files, "model_b"))["translation"] == "线缆 <2米>"


def test_crlf_file_with_blank_and_whitespace_lines(tmp_path):
    lines = [rec.line(rec.judge_record("meta_All_Beauty_0_1")), "", "   ", "\t", rec.line(rec.judge_record("meta_All_Beauty_0_2"))]
    path = rec.write_lines(tmp_path / "crlf.jsonl.out", lines, newline="\r\n")
    records = parse([path])
    assert records.get_column("line_number").to_list() == [1, 5]
    assert records.get_column("record_id").to_list() == ["meta_All_Beauty_0_1", "meta_All_Beauty_0_2"]
    assert records.get_column("parse_error").to_list() == [None, None]
    raw = raw_for([path])
    assert raw.height == 2
    assert raw.get_column("translation").to_list() == [rec.DEFAULT_TRANSLATIONS[1]] * 2


def test_crlf_inside_judge_text_and_prompt_is_kept_as_json_escape(tmp_path):
    text = rec.judge_text().replace("\n", "\r\n")
    files = write_one(tmp_path, rec.judge_record(text=text))
    assert only_row(raw_for(files, "model_a"))["parse_error"] is None


def test_russian_target_lang(tmp_path):
    translations = {1: "Чугунная сковорода Lodge, 10 дюймов", 2: "Чугунная сковорода Lodge 25 см (10\")"}
    files = write_one(tmp_path, rec.judge_record(target_lang="ru-ru", translations=translations))
    a = only_row(raw_for(files, "model_a"))
    b = only_row(raw_for(files, "model_b"))
    assert a["target_lang"] == b["target_lang"] == "ru-ru"
    assert a["translation"] == translations[1]
    assert b["translation"] == translations[2]


def test_thought_with_brackets_braces_and_escaped_quotes_round_trips(tmp_path):
    thought = 'Units "10 Inch" -> "10 英寸" [ok]; {format} kept, \\"escaped\\" ] } [[ {{ and a \\ backslash.'
    entries = [rec.entry(1, thought, rec.SCORES_A), rec.entry(2, rec.THOUGHT_B, rec.SCORES_B)]
    files = write_one(tmp_path, rec.judge_record(entries=entries, fence=True, prose="[see {above}]"))
    a = only_row(raw_for(files, "model_a"))
    assert a["thought"] == thought
    assert as_floats(a["scores"]) == rec.SCORES_A
    assert only_row(raw_for(files, "model_b"))["thought"] == rec.THOUGHT_B


def test_all_variants_together_in_one_file(tmp_path):
    variants = [
        rec.judge_record("meta_All_Beauty_0_0"),
        rec.judge_record("meta_All_Beauty_0_1", shape="converse"),
        rec.judge_record("meta_All_Beauty_0_2", thinking=True, redacted_thinking=True),
        rec.judge_record("meta_All_Beauty_0_3", fence=True, prose="[x] {y}"),
        rec.judge_record("meta_All_Beauty_0_4", string_ids=True, string_scores=True, reverse=True),
        rec.judge_record("meta_All_Beauty_0_5", indent=4),
        rec.judge_record("meta_All_Beauty_0_6", target_lang="ru-ru", translations={1: "Кабель <2м>", 2: "Кабель & провод"}),
    ]
    lines = [rec.line(variant) for variant in variants]
    path = rec.write_lines(tmp_path / "mixed.jsonl.out", lines[:3] + [""] + lines[3:], newline="\r\n")
    for model in MODELS:
        raw = raw_for([path], model)
        assert raw.height == len(variants)
        assert raw.get_column("parse_error").null_count() == len(variants)
        expected = rec.SCORES_A if model == "model_a" else rec.SCORES_B
        assert [as_floats(scores) for scores in raw.get_column("scores").to_list()] == [expected] * len(variants)


def test_raw_judgments_frame_validates(tmp_path):
    lines = [
        rec.line(rec.judge_record("meta_All_Beauty_0_0")),
        "not json",
        rec.line(rec.judge_record("meta_All_Beauty_0_1", error={"errorCode": 400, "errorMessage": "bad"})),
        rec.line(rec.judge_record("meta_All_Beauty_0_2", text="no array here")),
    ]
    path = rec.write_lines(tmp_path / "a.jsonl.out", lines)
    for model in MODELS:
        RawJudgments.validate(raw_for([path], model))


# --- parse_error codes ------------------------------------------------------------------------


TRUNCATED_LINE = '{"recordId": "meta_All_Beauty_0_1", "modelInput": {"messages": ['


@pytest.mark.parametrize(
    ("bad_line", "visible_id"),
    [
        ("not json at all", None),
        (TRUNCATED_LINE, "meta_All_Beauty_0_1"),
        ('[{"recordId": "meta_All_Beauty_0_1"}]', "meta_All_Beauty_0_1"),
        ('"just a string"', None),
        ("42", None),
    ],
    ids=["prose", "truncated", "array", "string", "number"],
)
def test_unreadable_lines_get_unreadable_code_line_excerpt_and_visible_record_id(tmp_path, bad_line, visible_id):
    path = rec.write_lines(tmp_path / "a.jsonl.out", [rec.line(rec.judge_record()), bad_line])
    records = parse([path])
    assert records.get_column("parse_error").to_list() == [None, bo.UNREADABLE_LINE]
    bad = records.row(1, named=True)
    assert bad["record_id"] == visible_id
    assert bad["line_number"] == 2
    assert bad["excerpt"] == bad_line[: bo.EXCERPT_CHARS]


OBJECT_SHAPED_BAD_LINES = [
    "{ this is not json }",
    '{"recordId": "a"} {"recordId": "b"}',
    '{"recordId": "a"}, {"recordId": "b"}',
]


@pytest.mark.parametrize("bad_line", OBJECT_SHAPED_BAD_LINES, ids=["braces", "two-objects", "two-objects-comma"])
def test_object_shaped_unreadable_line_alone_is_unreadable(tmp_path, bad_line):
    path = rec.write_lines(tmp_path / "a.jsonl.out", [bad_line])
    row = only_row(parse([path]))
    assert row["parse_error"] == bo.UNREADABLE_LINE
    assert row["excerpt"] == bad_line[: bo.EXCERPT_CHARS]


@pytest.mark.parametrize("bad_line", OBJECT_SHAPED_BAD_LINES, ids=["braces", "two-objects", "two-objects-comma"])
def test_object_shaped_unreadable_line_next_to_a_valid_line_is_unreadable(tmp_path, bad_line):
    path = rec.write_lines(tmp_path / "a.jsonl.out", [rec.line(rec.judge_record()), bad_line])
    records = parse([path])
    assert records.get_column("parse_error").to_list() == [None, bo.UNREADABLE_LINE]


def test_line_truncated_right_after_a_closing_brace_is_unreadable(tmp_path):
    full = rec.line(rec.judge_record("meta_All_Beauty_0_2"))
    cut = full[: full.rindex("}", 0, len(full) - 30) + 1]  # a writer died just after some '}'
    path = rec.write_lines(tmp_path / "a.jsonl.out", [rec.line(rec.judge_record("meta_All_Beauty_0_1")), cut])
    assert parse([path]).get_column("parse_error").to_list() == [None, bo.UNREADABLE_LINE]


def test_truncated_real_line_is_unreadable(tmp_path):
    full = rec.line(rec.judge_record())
    path = rec.write_lines(tmp_path / "a.jsonl.out", [full[: len(full) // 2]], trailing=False)
    assert only_row(parse([path]))["parse_error"] == bo.UNREADABLE_LINE


def test_error_record_keeps_code_and_message(tmp_path):
    record = rec.judge_record(error={"errorCode": 400, "errorMessage": "Malformed input request"})
    files = write_one(tmp_path, record)
    row = only_row(parse(files))
    assert row["record_id"] == rec.DEFAULT_RECORD_ID
    assert row["error"] == "400: Malformed input request"
    assert row["parse_error"] == bo.NO_MODEL_OUTPUT
    assert row["excerpt"] == "400: Malformed input request"


def test_no_model_output_code(tmp_path):
    files = write_one(tmp_path, rec.judge_record(model_output=False))
    assert only_row(parse(files))["parse_error"] == bo.NO_MODEL_OUTPUT


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("I cannot evaluate these translations.", ja.NO_JUDGE_ARRAY),
        ('\n[{"id": 1, "thought": "ok", "scores": [5, 5, 5, 5, 5, 5, 5]},, {"id": 2}]\n', ja.INVALID_JUDGE_ARRAY),
        ('\n[{"id": 1, "thought": "ok", "scores": [5, 5, 5, 5, 5, 5, 5]}, {"id": 2, "thought": "x"', ja.INVALID_JUDGE_ARRAY),
        ("\n[]\n", ja.NO_JUDGE_ARRAY),
        ("Scores: [1, 2, 3]", ja.NO_JUDGE_ARRAY),
    ],
    ids=["prose", "double-comma", "cut-off", "empty-array", "array-of-numbers"],
)
def test_judge_array_problems_get_their_codes(tmp_path, text, code):
    files = write_one(tmp_path, rec.judge_record(text=text))
    assert only_row(parse(files))["parse_error"] == code


def test_missing_entry_for_one_id_only_affects_that_model(tmp_path):
    files = write_one(tmp_path, rec.judge_record(entries=[rec.entry(1, rec.THOUGHT_A, rec.SCORES_A)]))
    assert only_row(raw_for(files, "model_a"))["parse_error"] is None
    assert only_row(raw_for(files, "model_b"))["parse_error"] == bo.NO_ENTRY_FOR_ID


def test_first_entry_wins_when_an_id_is_repeated(tmp_path):
    entries = [rec.entry(1, "first", rec.SCORES_A), rec.entry(1, "second", rec.SCORES_B), rec.entry(2, rec.THOUGHT_B, rec.SCORES_B)]
    files = write_one(tmp_path, rec.judge_record(entries=entries))
    assert only_row(raw_for(files, "model_a"))["thought"] == "first"


# --- judge_array and decode_line -------------------------------------------------------------------

ENTRY_ARRAY = rec.judge_text().strip()


def test_judge_array_reads_ids_thoughts_and_scores_as_text():
    entries, code = ja.judge_array(ENTRY_ARRAY)
    assert code is None
    assert [entry[:4] for entry in entries] == [
        ("1", rec.THOUGHT_A, rec.SCORES_A, None),
        ("2", rec.THOUGHT_B, rec.SCORES_B, None),
    ]


def test_judge_array_with_mixed_score_types_reads_each_as_text():
    entries, _ = ja.judge_array('[{"id": "1", "thought": "t", "scores": [5, "4.5", null, true, [1], 2.0, "N/A"]}]')
    assert entries[0][2] == ["5", "4.5", None, "true", None, "2.0", "N/A"]


def test_decode_line_reads_the_fields_of_a_record():
    fields = bl.decode_line(rec.line(rec.judge_record()).encode())
    assert fields.record_id == rec.DEFAULT_RECORD_ID
    assert fields.judge_text == "```json" + rec.judge_text()
    assert fields.output_text == rec.judge_text()
    assert (fields.stop_reason, fields.error, fields.input_tokens, fields.output_tokens) == ("stop_sequence", None, 812, 233)
    assert bo.prompt_fields(fields.prompt, [1, 2]) == ("zh-cn", rec.DEFAULT_SOURCE, rec.DEFAULT_TRANSLATIONS[1], rec.DEFAULT_TRANSLATIONS[2])


@pytest.mark.parametrize("line", [b"", b"nope", b"[1]", b"{", b'"x"', b"{}{}", b"\xff\xfe", b"[" * 50_000 + b"]" * 50_000])
def test_decode_line_of_what_is_not_one_object_is_none(line):
    assert bl.decode_line(line) is None


_pieces = st.sampled_from(["<source>", "</source>", "<content>", "</content>", '<translation id="1">', '<translation  id="2" >',
                           "</translation>", '<translations target_lang="zh-cn">', "<translation\nid=\"1\">", "x", " ", "\n", "中"])


# What polars' strip_chars removes: Unicode White_Space.
UNICODE_WHITESPACE = "".join(chr(c) for c in range(0x110000) if chr(c).isspace() and c not in range(0x1C, 0x20))


@settings(max_examples=300, deadline=None)
@given(parts=st.lists(_pieces, max_size=16))
def test_prompt_fields_equal_the_documented_patterns(parts):
    """The string-search extraction has the semantics of these regular expressions: the first block, the outermost content in it."""
    region = "".join(parts)

    def content(block):
        found = None if block is None else re.search(r"(?s)<content>(.*)</content>", block.group(1))
        return None if found is None else found.group(1).strip(UNICODE_WHITESPACE)

    lang = re.search(r'<translations\s+target_lang="([^"]*)"', region)
    expected = (lang and lang.group(1), content(re.search(r"(?s)<source>(.*?)</source>", region)))
    expected += tuple(content(re.search(rf'(?s)<translation\s+id="{i}"\s*>(.*?)</translation>', region)) for i in (1, 2))
    assert bo.prompt_fields(region, [1, 2]) == expected
