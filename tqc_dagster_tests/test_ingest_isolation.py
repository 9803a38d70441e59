"""Issue 13, kinds 2-4: nothing one line holds can stop the step or move another line's values; one bad entry
sinks only its own model; text is validated after decoding."""

from __future__ import annotations

import json

import polars as pl
import pytest

from tqc_dagster.core import batch_outputs as bo
from tqc_dagster.core import judgments as jd
from tqc_dagster.schemas import JudgeRecords, QuarantinedJudgments, RawJudgments, Samples
from tqc_dagster_tests import records as rec

MODELS = {"model_a": 1, "model_b": 2}


def write(tmp_path, lines: list[str | bytes]) -> str:
    path = tmp_path / "job" / "part.jsonl.out"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join((line.encode() if isinstance(line, str) else line) + b"\n" for line in lines))
    return str(path)


def run_all(path: str) -> dict[str, tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, jd.Accounting]]:
    """(raw, samples, quarantined, accounting) per model, every frame validated against its schema."""
    records = bo.read_records([path], list(MODELS.values())).records
    JudgeRecords.validate(records)
    out = {}
    for model, translation_id in MODELS.items():
        raw = bo.judgments_for_model(records, "v1", model, translation_id)
        samples, quarantined, accounting = jd.process(raw, jd.Thresholds())
        RawJudgments.validate(raw), Samples.validate(samples), QuarantinedJudgments.validate(quarantined)
        assert accounting.balanced
        out[model] = (raw, samples, quarantined, accounting)
    return out


def distinct_record(i: int) -> dict:
    """A valid record whose every field says which line it is."""
    scores_a = [5.0] * 7
    scores_a[i % 7] = float(i % 5)
    entries = [rec.entry(1, f"thought a{i}", scores_a), rec.entry(2, f"thought b{i}", rec.SCORES_B)]
    return rec.judge_record(f"meta_All_Beauty_{i}_0", source=f"Title {i}", translations={1: f"标题{i}", 2: f"題{i}"}, entries=entries)


def deep(levels: int) -> str:
    return "[" * levels + "]" * levels


BAD_LINES = {
    "comma-joined-arrays": rec.line(rec.judge_record("meta_X_1_1", text='[{"id": 1, "thought": "t", "scores": [5,5,5,5,5,5,5]}], [{"id": 2}]')),
    "two-objects-one-line": rec.line(rec.judge_record("meta_X_2_2")) + rec.line(rec.judge_record("meta_X_3_3")),
    "two-objects-comma": rec.line(rec.judge_record("meta_X_4_4")) + ", " + rec.line(rec.judge_record("meta_X_5_5")),
    "deep-judge-text": rec.line(rec.judge_record("meta_X_6_6", text=deep(20_000))),
    "deep-judge-objects": rec.line(rec.judge_record("meta_X_7_7", text='[{"id": 1, "x": ' * 5_000 + "}]" * 5_000)),
    "deep-line": '{"recordId": "meta_X_8_8", "junk": ' + deep(20_000) + "}",
    "huge-thought": rec.line(rec.judge_record("meta_X_9_9", entries=[rec.entry(1, "x" * 3_000_000, rec.SCORES_A)])),
    "huge-garbage": "{" + "garbage " * 200_000,
    "invalid-utf8": b'{"recordId": "meta_X_10_10", "bad": "\xff\xfe"',
    "nul-bytes": b"\x00" * 64,
    "array-of-records": json.dumps([rec.judge_record("meta_X_11_11")]),
    "number": "1e999999",
    "huge-int-score": rec.line(rec.judge_record("meta_X_12_12", text='[{"id": 1, "thought": "t", "scores": [' + "9" * 5000 + ",5,5,5,5,5,5]}]")),
}


def test_no_line_moves_another_lines_values(tmp_path):
    """Good and bad lines interleaved: each sample carries exactly its own line's values, at its own line number."""
    good = {i: distinct_record(i) for i in range(len(BAD_LINES) + 1)}
    lines: list[str | bytes] = []
    for i, bad in enumerate([*BAD_LINES.values(), None]):
        lines.append(rec.line(good[i]))
        if bad is not None:
            lines += [bad, ""]
    for model, (raw, samples, quarantined, _) in run_all(write(tmp_path, lines)).items():
        assert raw.height == len(good) + len(BAD_LINES)
        assert raw.get_column("line_number").to_list() == [n for n, line in enumerate(lines, start=1) if line]
        rows = {row["record_id"]: row for row in samples.to_dicts()}
        for i, record in good.items():
            row = rows[f"meta_All_Beauty_{i}_0"]
            expected_scores = record["modelOutput"]["content"][0]["text"]
            entry = json.loads(expected_scores)[0 if model == "model_a" else 1]
            assert (row["source"], row["thought"], row["scores"]) == (f"Title {i}", entry["thought"], entry["scores"])
            assert row["translation"] == (f"标题{i}" if model == "model_a" else f"題{i}")
        good_lines = {3 * i + 1 for i in good}
        assert not set(quarantined.get_column("line_number").to_list()) & good_lines


@pytest.mark.parametrize("name", list(BAD_LINES))
def test_each_faulty_line_alone_neither_raises_nor_loses_a_line(tmp_path, name):
    for _, samples, quarantined, accounting in run_all(write(tmp_path, [BAD_LINES[name]])).values():
        assert accounting.lines == 1 == samples.height + quarantined.height
        assert set(quarantined.get_column("reason")) <= set(jd.QUARANTINE_REASONS)


def test_arrays_joined_by_a_comma_or_whitespace_are_read_as_one(tmp_path):
    a, b = (json.dumps([entry], ensure_ascii=False) for entry in rec.default_entries())
    lines = [rec.line(rec.judge_record(f"meta_A_{i}_0", text=text)) for i, text in enumerate([f"{a},\n{b}", f"{a}\n\n{b}", f"```json\n{a}, {b}\n```"])]
    for model, (_, samples, quarantined, _) in run_all(write(tmp_path, lines)).items():
        assert quarantined.height == 0, quarantined.to_dicts()
        assert samples.get_column("thought").to_list() == [rec.THOUGHT_A if model == "model_a" else rec.THOUGHT_B] * 3


def test_a_following_array_that_is_not_entries_is_left_alone(tmp_path):
    text = json.dumps(rec.default_entries(), ensure_ascii=False) + "\n[1, 2] and [note]"
    for _, samples, quarantined, _ in run_all(write(tmp_path, [rec.line(rec.judge_record(text=text))])).values():
        assert samples.height == 1 and quarantined.height == 0


def test_a_deeply_nested_judge_output_is_unparseable_not_a_crash(tmp_path):
    for _, _, quarantined, _ in run_all(write(tmp_path, [BAD_LINES["deep-judge-text"]])).values():
        assert quarantined.select("record_id", "reason").rows() == [("meta_X_6_6", "unparseable_judge_output")]


# --- kind 3: one malformed entry sinks only its own model -----------------------------------------------

GOOD_B = rec.entry(2, rec.THOUGHT_B, rec.SCORES_B)


@pytest.mark.parametrize(
    ("entry_a", "reason"),
    [
        (rec.entry(1, rec.THOUGHT_A, {"accuracy": 5}), "scores_not_a_list"),
        (rec.entry(1, rec.THOUGHT_A, "5,5,5,5,5,5,5"), "scores_not_a_list"),
        (rec.entry(1, ["first point", "second point"], rec.SCORES_A), "thought_not_text"),
        (rec.entry(1, {"text": "nested"}, rec.SCORES_A), "thought_not_text"),
        (rec.entry(1, True, rec.SCORES_A), "thought_not_text"),
        (rec.entry(1, rec.THOUGHT_A, [5, 5, 5, {"x": 1}, 5, 5, 5]), "score_not_numeric"),
        (rec.entry(1, rec.THOUGHT_A, [5, 5, 5, [4], 5, 5, 5]), "score_not_numeric"),
        (rec.entry(1, rec.THOUGHT_A, [5, 5, 5, True, 5, 5, 5]), "score_not_numeric"),
        (rec.entry([1], rec.THOUGHT_A, rec.SCORES_A), "missing_judge_entry"),
        ("an entry that is a string", "missing_judge_entry"),
        (None, "missing_judge_entry"),
    ],
    ids=["scores-object", "scores-string", "thought-list", "thought-object", "thought-bool", "score-object", "score-list",
         "score-bool", "id-list", "entry-string", "entry-null"],
)
def test_a_malformed_entry_does_not_sink_the_other_models_entry(tmp_path, entry_a, reason):
    path = write(tmp_path, [rec.line(rec.judge_record(text=json.dumps([entry_a, GOOD_B], ensure_ascii=False)))])
    results = run_all(path)
    raw_a, samples_a, quarantined_a, _ = results["model_a"]
    assert samples_a.height == 0 and quarantined_a.get_column("reason").to_list() == [reason]
    assert raw_a.get_column("thought").to_list() in ([None], [rec.THOUGHT_A])  # never the text of a list or an object
    _, samples_b, quarantined_b, _ = results["model_b"]
    assert quarantined_b.height == 0 and samples_b.get_column("thought").to_list() == [rec.THOUGHT_B]
    assert samples_b.get_column("scores").to_list() == [rec.SCORES_B]


def test_a_non_string_thought_never_becomes_text(tmp_path):
    path = write(tmp_path, [rec.line(rec.judge_record(entries=[rec.entry(1, ["a", "b"], rec.SCORES_A), GOOD_B]))])
    records = bo.read_records([path], [1, 2]).records
    entry = records.get_column("judge_entries").to_list()[0][0]
    assert entry == {"id": "1", "thought": None, "scores": [str(score) for score in rec.SCORES_A], "fault": "thought_not_text"}


# --- kind 4: text is validated after decoding ----------------------------------------------------------


def test_escaped_control_characters_quarantine_only_the_model_whose_text_holds_them(tmp_path):
    entries = [rec.entry(1, "fine\u0000then", rec.SCORES_A), rec.entry(2, "bell\u0007", rec.SCORES_B)]
    lines = [
        rec.line(rec.judge_record("meta_A_1_1", entries=entries)),
        rec.line(rec.judge_record("meta_A_2_2", translations={1: "煎锅\u001b[31m", 2: "平底锅"})),
        rec.line(rec.judge_record("meta_A_3_3", translations={1: "煎\u0085锅", 2: "平底锅\u007f"})),
    ]
    results = run_all(write(tmp_path, lines))
    assert results["model_a"][2].select("record_id", "reason").rows() == [
        ("meta_A_1_1", "corrupt_text"), ("meta_A_2_2", "corrupt_text"), ("meta_A_3_3", "corrupt_text")
    ]
    assert results["model_b"][2].select("record_id", "reason").rows() == [("meta_A_1_1", "corrupt_text"), ("meta_A_3_3", "corrupt_text")]
    assert results["model_b"][1].get_column("record_id").to_list() == ["meta_A_2_2"]


def test_invalid_utf8_in_a_translation_is_quarantined_not_passed_on(tmp_path):
    line = rec.line(rec.judge_record(translations={1: "煎锅@@", 2: "平底锅"})).encode().replace(b"@@", b"\xe9\xff")
    results = run_all(write(tmp_path, [line]))
    assert results["model_a"][2].get_column("reason").to_list() == ["corrupt_text"]
    assert results["model_b"][1].get_column("translation").to_list() == ["平底锅"]


def test_a_lone_surrogate_escape_becomes_a_marked_replacement_and_is_quarantined(tmp_path):
    text = '[{"id": 1, "thought": "broken \\ud83d emoji", "scores": [5,5,5,5,5,5,5]}, ' + json.dumps(GOOD_B) + "]"
    in_prompt = rec.line(rec.judge_record("meta_A_2_2")).replace("Lodge Cast Iron", "Lodge \\\\udc80 Iron")
    in_prompt = in_prompt.replace("\\\\udc80", "\\udc80")
    results = run_all(write(tmp_path, [rec.line(rec.judge_record("meta_A_1_1", text=text)), in_prompt]))
    assert results["model_a"][2].select("record_id", "reason").rows() == [("meta_A_1_1", "corrupt_text"), ("meta_A_2_2", "corrupt_text")]
    assert results["model_b"][2].select("record_id", "reason").rows() == [("meta_A_2_2", "corrupt_text")]


def test_windows_line_ends_inside_texts_become_line_feeds(tmp_path):
    entries = [rec.entry(1, "first\r\nsecond\rthird", rec.SCORES_A), GOOD_B]
    lines = [rec.line(rec.judge_record(entries=entries, translations={1: "煎\r\n锅", 2: "平底锅"}))]
    samples = run_all(write(tmp_path, lines))["model_a"][1]
    assert samples.select("thought", "translation").rows() == [("first\nsecond\nthird", "煎\n锅")]


def test_tabs_and_line_feeds_are_text(tmp_path):
    entries = [rec.entry(1, "a\tb\nc", rec.SCORES_A), GOOD_B]
    assert run_all(write(tmp_path, [rec.line(rec.judge_record(entries=entries))]))["model_a"][1].height == 1
