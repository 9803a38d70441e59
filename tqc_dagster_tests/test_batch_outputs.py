"""The vectorized reader of Bedrock batch outputs: every input variant of data contract section 2."""

from __future__ import annotations

from contextlib import nullcontext

import polars as pl
import pytest
from hypothesis import given, settings, strategies as st

from tqc_dagster.core import batch_outputs as bo
from tqc_dagster.schemas import RawJudgments
from tqc_dagster_tests import records as rec

MODELS = {"model_a": 1, "model_b": 2}
A_SCORES = ["5", "5", "5", "5", "4", "5", "4.5"]  # scores are read as strings (floats print as 5.0 -> "5")


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


# --- read_lines / read_records ------------------------------------------------------------------


def test_read_lines_numbers_lines_from_one_and_marks_blank_lines_null(tmp_path):
    path = rec.write_lines(tmp_path / "a.jsonl.out", ["first", "", "   \t ", "fourth"])
    lines = bo.read_lines(path)
    assert lines.columns == ["line_number", "line"]
    assert lines.rows() == [(1, "first"), (2, None), (3, None), (4, "fourth")]


def test_read_lines_keeps_crlf_numbering_and_blank_lines(tmp_path):
    path = rec.write_lines(tmp_path / "crlf.jsonl.out", ["one", "two", "", "three"], newline="\r\n")
    lines = bo.read_lines(path)
    assert [line if line is None else line.rstrip("\r") for line in lines.get_column("line").to_list()] == ["one", "two", None, "three"]
    assert lines.get_column("line_number").to_list() == [1, 2, 3, 4]


def test_crlf_records_parse_like_lf_records(tmp_path):
    lines = [rec.line(rec.judge_record("meta_All_Beauty_0_1")), rec.line(rec.judge_record("meta_All_Beauty_0_2"))]
    lf = rec.write_lines(tmp_path / "lf" / "a.jsonl.out", lines)
    crlf = rec.write_lines(tmp_path / "crlf" / "a.jsonl.out", lines, newline="\r\n")
    assert parse([crlf]).drop("source_file").equals(parse([lf]).drop("source_file"))


def test_read_lines_last_line_without_newline_is_read(tmp_path):
    path = rec.write_lines(tmp_path / "a.jsonl.out", ["one", "two"], trailing=False)
    assert bo.read_lines(path).get_column("line").to_list() == ["one", "two"]


def test_read_lines_invalid_utf8_becomes_replacement_char_and_keeps_other_lines(tmp_path):
    path = tmp_path / "bad.jsonl.out"
    path.write_bytes(b"good\nba\xffd\n\xc3\r\nlast\n")
    lines = bo.read_lines(str(path))
    assert [line.rstrip("\r") for line in lines.get_column("line").to_list()] == ["good", "ba\ufffdd", "\ufffd", "last"]
    assert lines.get_column("line_number").to_list() == [1, 2, 3, 4]


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


def test_read_lines_empty_file_has_no_rows(tmp_path):
    path = tmp_path / "empty.jsonl.out"
    path.write_bytes(b"")
    assert bo.read_lines(str(path)).filter(pl.col("line").is_not_null()).height == 0


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


@pytest.mark.parametrize(
    "bad_line",
    [
        "not json at all",
        '{"recordId": "meta_All_Beauty_0_1", "modelInput": {"messages": [',
        '[{"recordId": "meta_All_Beauty_0_1"}]',
        '"just a string"',
        "42",
    ],
    ids=["prose", "truncated", "array", "string", "number"],
)
def test_unreadable_lines_get_unreadable_code_and_line_excerpt(tmp_path, bad_line):
    path = rec.write_lines(tmp_path / "a.jsonl.out", [rec.line(rec.judge_record()), bad_line])
    records = parse([path])
    assert records.get_column("parse_error").to_list() == [None, bo.UNREADABLE_LINE]
    bad = records.row(1, named=True)
    assert bad["record_id"] is None
    assert bad["line_number"] == 2
    assert bad["excerpt"] == bad_line[: bo.EXCERPT_CHARS]


OBJECT_SHAPED_BAD_LINES = [
    "{ this is not json }",
    '{"recordId": "a"} {"recordId": "b"}',
    '{"recordId": "meta_All_Beauty_0_9", "modelInput": {"messages": [{"role": "user", "content": "plain"}]}}',
]


@pytest.mark.parametrize("bad_line", OBJECT_SHAPED_BAD_LINES, ids=["braces", "two-objects", "wrong-shape"])
def test_object_shaped_unreadable_line_alone_is_unreadable(tmp_path, bad_line):
    path = rec.write_lines(tmp_path / "a.jsonl.out", [bad_line])
    row = only_row(parse([path]))
    assert row["parse_error"] == bo.UNREADABLE_LINE
    assert row["excerpt"] == bad_line[: bo.EXCERPT_CHARS]


@pytest.mark.parametrize("bad_line", OBJECT_SHAPED_BAD_LINES, ids=["braces", "two-objects", "wrong-shape"])
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
        ("I cannot evaluate these translations.", bo.NO_JUDGE_ARRAY),
        ('\n[{"id": 1, "thought": "ok", "scores": [5, 5, 5, 5, 5, 5, 5]},, {"id": 2}]\n', bo.INVALID_JUDGE_ARRAY),
        ('\n[{"id": 1, "thought": "ok", "scores": [5, 5, 5, 5, 5, 5, 5]}, {"id": 2, "thought": "x"', bo.NO_JUDGE_ARRAY),
    ],
    ids=["prose", "double-comma", "cut-off"],
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


# --- decode_json --------------------------------------------------------------------------------

ENTRY_ARRAY = rec.judge_text().strip()


def _one_by_one(values: list[str | None], dtype: pl.DataType) -> list:
    """Each value decoded on its own; null when it does not decode to exactly one value."""
    out = []
    for value in values:
        try:
            decoded = pl.Series([value], dtype=pl.String).str.json_decode(dtype).to_list()
        except pl.exceptions.PolarsError:
            decoded = []
        out.append(decoded[0] if len(decoded) == 1 else None)
    return out


def test_decode_json_isolates_bad_values_and_keeps_good_ones():
    values = pl.Series("v", [ENTRY_ARRAY, "[{", None, "[]", ENTRY_ARRAY, "nope"], dtype=pl.String)
    decoded = bo.decode_json(values, bo.JUDGE_ARRAY_DTYPE)
    assert decoded.len() == values.len()
    assert decoded.dtype == bo.JUDGE_ARRAY_DTYPE
    assert decoded.to_list() == _one_by_one(values.to_list(), bo.JUDGE_ARRAY_DTYPE)
    assert decoded[0] is not None and decoded[1] is None and decoded[5] is None


@pytest.mark.parametrize("values", [[""], [" "], ["", "[]"], ["[]", "\t", "[{"]], ids=["empty", "space", "empty+array", "tab-mixed"])
def test_decode_json_blank_strings_become_null_and_keep_length(values):
    decoded = bo.decode_json(pl.Series("v", values, dtype=pl.String), bo.JUDGE_ARRAY_DTYPE)
    assert decoded.len() == len(values)
    assert decoded.to_list() == _one_by_one(values, bo.JUDGE_ARRAY_DTYPE)


def test_decode_json_of_empty_series():
    decoded = bo.decode_json(pl.Series("v", [], dtype=pl.String), bo.LINE_DTYPE)
    assert decoded.len() == 0


def _mutate_json(text: str, cut: int, junk: str) -> str:
    return text[:cut] + junk + text[cut:]


def _not_blank(text: str) -> bool:
    return text.strip() != ""


json_like = st.one_of(
    # blank strings are left out here: see test_decode_json_blank_strings_become_null_and_keep_length
    st.text(max_size=40).filter(lambda text: text.strip() != ""),
    st.sampled_from([ENTRY_ARRAY, rec.line(rec.judge_record()), "[]", "{}", "null", "[{}]", '[{"id": [1]}]']),
    st.builds(
        _mutate_json,
        st.sampled_from([ENTRY_ARRAY, rec.line(rec.judge_record())]),
        st.integers(min_value=0, max_value=400),
        st.text(alphabet='[]{}",:\\ 0123456789abc\n', max_size=4),
    ),
    st.builds(lambda text, cut: text[:cut], st.sampled_from([ENTRY_ARRAY, rec.line(rec.judge_record())]), st.integers(1, 400)),
).filter(_not_blank)


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.one_of(st.none(), json_like), max_size=12), which=st.sampled_from(["array", "line"]))
def test_decode_json_never_raises_and_equals_one_by_one_decoding(values, which):
    dtype = bo.JUDGE_ARRAY_DTYPE if which == "array" else bo.LINE_DTYPE
    series = pl.Series("v", values, dtype=pl.String)
    decoded = bo.decode_json(series, dtype)
    assert decoded.len() == len(values)
    assert decoded.to_list() == _one_by_one(values, dtype)
