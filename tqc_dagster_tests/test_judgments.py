"""The rules of data contract section 4: quarantine reasons, derived columns, duplicates, accounting."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

from tqc_dagster.core import batch_outputs as bo
from tqc_dagster.core import judgments as jd
from tqc_dagster.schemas import QuarantinedJudgments, RawJudgments, Samples
from tqc_dagster_tests import records as rec
from tqc_dagster_tests.ingest_oracle import check_ingest

MODELS = {"model_a": 1, "model_b": 2}
OTHER_ID = "meta_Home_and_Kitchen_0_1"  # a valid record sharing the file with the faulty one
FAULTY_ID = "meta_All_Beauty_3_17"


def raw_for(files: list[str], model: str, judge_version: str = "v1") -> pl.DataFrame:
    records = bo.read_records(files, [1, 2]).records
    return bo.judgments_for_model(records, judge_version, model, MODELS[model])


def run(files: list[str], model: str, thresholds: jd.Thresholds = jd.Thresholds(), judge_version: str = "v1"):
    return jd.process(raw_for(files, model, judge_version), thresholds)


def write_bytes_lines(path: Path, lines: list[bytes | str]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join((item.encode("utf-8") if isinstance(item, str) else item) + b"\n" for item in lines))
    return str(path)


def scores_record(record_id: str, scores_a: list, scores_b: list | None = None, **kwargs) -> dict:
    scores_b = rec.SCORES_B if scores_b is None else scores_b
    entries = [rec.entry(1, rec.THOUGHT_A, scores_a), rec.entry(2, rec.THOUGHT_B, scores_b)]
    return rec.judge_record(record_id, entries=entries, **kwargs)


def one_sample(tmp_path: Path, record: dict, model: str = "model_a", thresholds: jd.Thresholds = jd.Thresholds()) -> dict:
    path = rec.write_records(tmp_path / "part.jsonl.out", [record])
    samples, quarantined, accounting = run([path], model, thresholds)
    assert quarantined.height == 0, quarantined
    assert samples.height == 1 and accounting.balanced
    return samples.row(0, named=True)


# --- 2. every fault class yields exactly its reason code -----------------------------------------

FULL_LINE = rec.line(rec.judge_record(FAULTY_ID))


def _entries(**overrides_b) -> list[dict]:
    """Both entries carry the fault (so both models are quarantined) unless stated."""
    a = {"translation_id": 1, "thought": rec.THOUGHT_A, "scores": list(rec.SCORES_A)}
    b = {"translation_id": 2, "thought": rec.THOUGHT_B, "scores": list(rec.SCORES_B)}
    a.update(overrides_b)
    b.update(overrides_b)
    return [rec.entry(**a), rec.entry(**b)]


def _faulty(record_id=FAULTY_ID, **kwargs) -> str:
    return rec.line(rec.judge_record(record_id, **kwargs))


BOTH = ("model_a", "model_b")
# (case id, faulty line, record_id expected on the quarantined row, affected models, reason)
FAULT_CASES = [
    # an unreadable line keeps the recordId visible in its text
    ("truncated-line", FULL_LINE[: len(FULL_LINE) // 2], FAULTY_ID, BOTH, "unreadable_line"),
    ("truncated-line-short", FULL_LINE[:25], None, BOTH, "unreadable_line"),
    ("not-json", "this is not json at all", None, BOTH, "unreadable_line"),
    ("json-array", json.dumps([rec.judge_record(FAULTY_ID)]), FAULTY_ID, BOTH, "unreadable_line"),
    ("two-records-on-one-line", FULL_LINE + ", " + rec.line(rec.judge_record("meta_All_Beauty_9_9")), FAULTY_ID, BOTH, "unreadable_line"),
    ("json-string", '"meta_All_Beauty_3_17"', None, BOTH, "unreadable_line"),
    ("json-number", "3.14", None, BOTH, "unreadable_line"),
    ("invalid-utf8", b"\xff\xfe\x00garbage \xc3\x28 bytes", None, BOTH, "unreadable_line"),
    ("no-record-id", _faulty(omit_record_id=True), None, BOTH, "missing_record_id"),
    ("null-record-id", _faulty(record_id=None), None, BOTH, "missing_record_id"),
    ("empty-record-id", _faulty(record_id=""), None, BOTH, "missing_record_id"),
    ("batch-error", _faulty(error={"errorCode": 400, "errorMessage": "Malformed input request: #: bad"}), FAULTY_ID, BOTH, "batch_error"),
    ("batch-error-string-code", _faulty(error={"errorCode": "ThrottlingException", "errorMessage": "slow down"}), FAULTY_ID, BOTH, "batch_error"),
    ("missing-model-output", _faulty(model_output=False), FAULTY_ID, BOTH, "missing_model_output"),
    ("max-tokens", _faulty(text=rec.judge_text(cut_at=150), stop_reason="max_tokens"), FAULTY_ID, BOTH, "truncated_output"),
    ("max-tokens-converse", _faulty(shape="converse", text=rec.judge_text(cut_at=150), stop_reason="max_tokens"), FAULTY_ID, BOTH, "truncated_output"),
    ("max-tokens-complete-array", _faulty(stop_reason="max_tokens", prose="And one more remark that was cut"), FAULTY_ID, BOTH, "truncated_output"),
    ("plain-prose", _faulty(text="I am unable to rate these translations without more context."), FAULTY_ID, BOTH, "unparseable_judge_output"),
    ("empty-output", _faulty(text=""), FAULTY_ID, BOTH, "unparseable_judge_output"),
    ("empty-array", _faulty(text="\n[]\n"), FAULTY_ID, BOTH, "unparseable_judge_output"),
    ("broken-array", _faulty(text='\n[{"id": 1, "thought": "ok", "scores": [5, 5, 5, 5, 5, 5, 5]},, {"id": 2}]\n'), FAULTY_ID, BOTH, "unparseable_judge_output"),
    ("broken-entry", _faulty(text='\n[{"id": 1, "thought": "ok" "scores": [5, 5, 5, 5, 5, 5, 5]}]\n'), FAULTY_ID, BOTH, "unparseable_judge_output"),
    ("cut-array-no-max-tokens", _faulty(text=rec.judge_text(cut_at=150)), FAULTY_ID, BOTH, "unparseable_judge_output"),
    ("no-entry-for-2", _faulty(entries=[rec.entry(1, rec.THOUGHT_A, rec.SCORES_A)]), FAULTY_ID, ("model_b",), "missing_judge_entry"),
    ("no-entry-for-1", _faulty(entries=[rec.entry(2, rec.THOUGHT_B, rec.SCORES_B), rec.entry(3, "x", rec.SCORES_B)]), FAULTY_ID, ("model_a",), "missing_judge_entry"),
    ("thought-a-list", _faulty(entries=_entries(thought=["fine", "ok"])), FAULTY_ID, BOTH, "thought_not_text"),
    ("thought-an-object", _faulty(entries=_entries(thought={"text": "fine"})), FAULTY_ID, BOTH, "thought_not_text"),
    ("thought-a-number", _faulty(entries=_entries(thought=5)), FAULTY_ID, BOTH, "thought_not_text"),
    ("empty-thought", _faulty(entries=_entries(thought="")), FAULTY_ID, BOTH, "empty_thought"),
    ("blank-thought", _faulty(entries=_entries(thought="  \n\t ")), FAULTY_ID, BOTH, "empty_thought"),
    ("null-thought", _faulty(entries=_entries(thought=None)), FAULTY_ID, BOTH, "empty_thought"),
    ("no-thought-key", _faulty(entries=_entries(thought=rec.OMIT)), FAULTY_ID, BOTH, "empty_thought"),
    ("scores-an-object", _faulty(entries=_entries(scores={"0": 5.0})), FAULTY_ID, BOTH, "scores_not_a_list"),
    ("scores-a-string", _faulty(entries=_entries(scores="5, 5, 5, 5, 5, 5, 5")), FAULTY_ID, BOTH, "scores_not_a_list"),
    ("6-scores", _faulty(entries=_entries(scores=[5.0] * 6)), FAULTY_ID, BOTH, "wrong_score_count"),
    ("8-scores", _faulty(entries=_entries(scores=[5.0] * 8)), FAULTY_ID, BOTH, "wrong_score_count"),
    ("0-scores", _faulty(entries=_entries(scores=[])), FAULTY_ID, BOTH, "wrong_score_count"),
    ("no-scores-key", _faulty(entries=_entries(scores=rec.OMIT)), FAULTY_ID, BOTH, "wrong_score_count"),
    ("score-NA", _faulty(entries=_entries(scores=[5.0, 5.0, "N/A", 5.0, 5.0, 5.0, 5.0])), FAULTY_ID, BOTH, "score_not_numeric"),
    ("score-null", _faulty(entries=_entries(scores=[5.0, 5.0, 5.0, 5.0, 5.0, 5.0, None])), FAULTY_ID, BOTH, "score_not_numeric"),
    ("score-NaN-string", _faulty(entries=_entries(scores=["NaN", 5.0, 5.0, 5.0, 5.0, 5.0, 5.0])), FAULTY_ID, BOTH, "score_not_numeric"),
    ("score-empty-string", _faulty(entries=_entries(scores=[5.0, "", 5.0, 5.0, 5.0, 5.0, 5.0])), FAULTY_ID, BOTH, "score_not_numeric"),
    ("score-7", _faulty(entries=_entries(scores=[5.0, 5.0, 5.0, 7.0, 5.0, 5.0, 5.0])), FAULTY_ID, BOTH, "score_out_of_range"),
    ("score-minus-1", _faulty(entries=_entries(scores=[5.0, 5.0, 5.0, 5.0, 5.0, 5.0, -1])), FAULTY_ID, BOTH, "score_out_of_range"),
    ("score-5.5-string", _faulty(entries=_entries(scores=["5.5", 5.0, 5.0, 5.0, 5.0, 5.0, 5.0])), FAULTY_ID, BOTH, "score_out_of_range"),
    ("no-source-content", _faulty(source=rec.MISSING), FAULTY_ID, BOTH, "missing_source"),
    ("empty-source", _faulty(source=""), FAULTY_ID, BOTH, "missing_source"),
    ("blank-source", _faulty(source="   "), FAULTY_ID, BOTH, "missing_source"),
    ("no-translation-content", _faulty(translations={1: rec.MISSING, 2: rec.MISSING}), FAULTY_ID, BOTH, "missing_translation"),
    ("no-translation-block", _faulty(translations={1: "译文", 2: rec.NO_BLOCK}), FAULTY_ID, ("model_b",), "missing_translation"),
    ("empty-translation", _faulty(translations={1: "", 2: ""}), FAULTY_ID, BOTH, "missing_translation"),
    ("None-translation", _faulty(translations={1: "None", 2: "None"}), FAULTY_ID, BOTH, "missing_translation"),
    ("None-translation-padded", _faulty(translations={1: "  None\n", 2: "  "}), FAULTY_ID, BOTH, "missing_translation"),
    ("nul-in-thought", _faulty(entries=_entries(thought="fine\x00")), FAULTY_ID, BOTH, "corrupt_text"),
    ("control-in-source", _faulty(source="Skillet\x1b[0m 10 Inch"), FAULTY_ID, BOTH, "corrupt_text"),
    ("replacement-in-translation", _faulty(translations={1: "煎\ufffd锅", 2: "平底\ufffd"}), FAULTY_ID, BOTH, "corrupt_text"),
    ("context-window-exceeded", _faulty(stop_reason="model_context_window_exceeded"), FAULTY_ID, BOTH, "truncated_output"),
]
# empty-output: the judge wrote "" so the excerpt is ""
NO_EXCERPT = {"empty-output"}


@pytest.mark.parametrize(
    ("faulty_line", "record_id", "affected", "reason"),
    [pytest.param(*case[1:], id=case[0]) for case in FAULT_CASES],
)
def test_fault_yields_exactly_its_reason(tmp_path, faulty_line, record_id, affected, reason):
    path = write_bytes_lines(tmp_path / "job" / "part-0.jsonl.out", [rec.line(rec.judge_record(OTHER_ID)), faulty_line])
    for model in MODELS:
        samples, quarantined, accounting = run([path], model)
        assert accounting.balanced and accounting.lines == 2 and accounting.duplicates == 0
        QuarantinedJudgments.validate(quarantined)
        if model not in affected:
            assert quarantined.height == 0, quarantined
            assert sorted(samples.get_column("record_id").to_list()) == sorted([OTHER_ID, record_id])
            continue
        assert samples.get_column("record_id").to_list() == [OTHER_ID]
        assert quarantined.height == 1, quarantined
        row = quarantined.row(0, named=True)
        assert row["reason"] == reason
        assert row["record_id"] == record_id
        assert row["source_file"] == path
        assert row["line_number"] == 2
        assert (row["judge_version"], row["model"]) == ("v1", model)


@pytest.mark.parametrize(
    ("faulty_line", "affected"),
    [pytest.param(case[1], case[3], id=case[0]) for case in FAULT_CASES if case[0] not in NO_EXCERPT],
)
def test_quarantined_row_has_a_non_empty_excerpt(tmp_path, faulty_line, affected):
    path = write_bytes_lines(tmp_path / "part-0.jsonl.out", [faulty_line])
    for model in affected:
        _, quarantined, _ = run([path], model)
        assert quarantined.height == 1
        excerpt = quarantined.get_column("excerpt").to_list()[0]
        assert excerpt is not None and excerpt.strip() != "", excerpt
        assert len(excerpt) <= bo.EXCERPT_CHARS


def test_missing_model_output_has_a_non_empty_excerpt(tmp_path):
    path = write_bytes_lines(tmp_path / "part-0.jsonl.out", [_faulty(model_output=False)])
    _, quarantined, _ = run([path], "model_a")
    assert quarantined.get_column("reason").to_list() == ["missing_model_output"]
    assert quarantined.get_column("excerpt").to_list()[0]


def test_unreadable_excerpt_is_the_start_of_the_line(tmp_path):
    long_garbage = "x" * 500
    path = write_bytes_lines(tmp_path / "part-0.jsonl.out", [long_garbage])
    _, quarantined, _ = run([path], "model_a")
    assert quarantined.get_column("excerpt").to_list() == ["x" * bo.EXCERPT_CHARS]


def test_batch_error_excerpt_is_the_error(tmp_path):
    path = write_bytes_lines(tmp_path / "part-0.jsonl.out", [_faulty(error={"errorCode": 400, "errorMessage": "Bad request"})])
    _, quarantined, _ = run([path], "model_b")
    assert quarantined.get_column("excerpt").to_list() == ["400: Bad request"]


def test_invalid_utf8_inside_a_file_does_not_hide_the_other_lines(tmp_path):
    lines = [rec.line(rec.judge_record("meta_A_0_1")), b"\x80\x81\xfe", rec.line(rec.judge_record("meta_A_0_2")), b"\xc3"]
    path = write_bytes_lines(tmp_path / "part-0.jsonl.out", lines)
    samples, quarantined, accounting = run([path], "model_a")
    assert samples.get_column("record_id").to_list() == ["meta_A_0_1", "meta_A_0_2"]
    assert quarantined.select("line_number", "reason").rows() == [(2, "unreadable_line"), (4, "unreadable_line")]
    assert "\ufffd" in quarantined.get_column("excerpt").to_list()[0]
    assert accounting == jd.Accounting(lines=4, valid=2, quarantined=2, duplicates=0)


def test_every_reason_code_is_covered_by_a_fault_case():
    assert {case[4] for case in FAULT_CASES} == set(jd.QUARANTINE_REASONS)


@pytest.mark.parametrize(
    ("faulty_line", "reason"),
    [
        pytest.param(_faulty(omit_record_id=True, error={"errorCode": 400, "errorMessage": "x"}), "missing_record_id", id="id-before-error"),
        pytest.param(_faulty(stop_reason="max_tokens", text="cut [", source=""), "truncated_output", id="max-tokens-before-array"),
        pytest.param(_faulty(entries=_entries(scores=[9.0] * 3), stop_reason="max_tokens"), "truncated_output", id="max-tokens-before-scores"),
        pytest.param(_faulty(text="no array", translations={1: "", 2: ""}), "unparseable_judge_output", id="array-before-translation"),
        pytest.param(_faulty(entries=_entries(thought="", scores=[5.0])), "empty_thought", id="thought-before-count"),
        pytest.param(_faulty(entries=_entries(scores=["N/A"] * 6)), "wrong_score_count", id="count-before-numeric"),
        pytest.param(_faulty(entries=_entries(scores=["N/A", 9, 5, 5, 5, 5, 5])), "score_not_numeric", id="numeric-before-range"),
        pytest.param(_faulty(entries=_entries(scores=[9.0] * 7), source=""), "score_out_of_range", id="range-before-source"),
        pytest.param(_faulty(source="", translations={1: "None", 2: ""}), "missing_source", id="source-before-translation"),
    ],
)
def test_first_broken_rule_in_list_order_wins(tmp_path, faulty_line, reason):
    path = write_bytes_lines(tmp_path / "p.jsonl.out", [faulty_line])
    for model in MODELS:
        _, quarantined, _ = run([path], model)
        assert quarantined.get_column("reason").to_list() == [reason]


def test_unreadable_lines_are_each_quarantined_on_their_own(tmp_path):
    path = write_bytes_lines(tmp_path / "p.jsonl.out", ["garbage one", "garbage one", "[1]", rec.line(rec.judge_record())])
    samples, quarantined, accounting = run([path], "model_a")
    assert quarantined.get_column("line_number").to_list() == [1, 2, 3]
    assert accounting == jd.Accounting(lines=4, valid=1, quarantined=3, duplicates=0)


def test_records_without_record_id_are_each_quarantined_on_their_own(tmp_path):
    lines = [_faulty(omit_record_id=True, source="first"), _faulty(omit_record_id=True, source="second")]
    path = write_bytes_lines(tmp_path / "p.jsonl.out", lines)
    _, quarantined, accounting = run([path], "model_a")
    assert quarantined.get_column("line_number").to_list() == [1, 2]
    assert accounting.duplicates == 0


def test_records_with_empty_record_id_are_each_quarantined_on_their_own(tmp_path):
    lines = [_faulty(record_id="", source="first"), _faulty(record_id="", source="second")]
    path = write_bytes_lines(tmp_path / "p.jsonl.out", lines)
    _, quarantined, accounting = run([path], "model_a")
    assert quarantined.get_column("line_number").to_list() == [1, 2]
    assert accounting.duplicates == 0


# --- 3. derivations on valid samples -------------------------------------------------------------


@pytest.mark.parametrize(
    ("record_id", "category"),
    [
        ("meta_All_Beauty_3_17", "All_Beauty"),
        ("meta_Home_and_Kitchen_0_5", "Home_and_Kitchen"),
        ("meta_Clothing_Shoes_and_Jewelry_12_345", "Clothing_Shoes_and_Jewelry"),
        ("meta_Books_0_0", "Books"),
        ("custom-record-1", "unknown"),
        ("meta_All_Beauty", "unknown"),
        ("meta_All_Beauty_3", "unknown"),
        ("meta_All_Beauty_x_17", "unknown"),
        ("All_Beauty_3_17", "unknown"),
        ("1", "unknown"),
    ],
)
def test_product_category(tmp_path, record_id, category):
    assert one_sample(tmp_path, rec.judge_record(record_id))["product_category"] == category


FIVE = [5.0] * 7


@pytest.mark.parametrize(
    ("scores", "min_score", "criterion", "target_model", "bucket", "label"),
    [
        (FIVE, 5.0, None, "complex", 5, "positive"),
        ([5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 4.5], 4.5, 6, "complex", 4, "positive"),
        ([5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 3.5], 3.5, 6, "complex", 3, "negative"),
        ([5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 4.0], 4.0, 6, "complex", 4, "positive"),
        ([2.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0], 2.0, 0, "simple", 2, "negative"),
        ([5.0, 5.0, 3.0, 5.0, 2.5, 2.5, 5.0], 2.5, 4, "simple", 2, "negative"),  # tie: first index
        ([5.0, 3.0, 5.0, 5.0, 5.0, 5.0, 3.0], 3.0, 1, "simple", 3, "positive"),  # tie with criterion 6
        ([5.0, 5.0, 5.0, 5.0, 5.0, 2.99, 5.0], 2.99, 5, "simple", 2, "negative"),
        ([4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0], 4.0, 0, "simple", 4, "positive"),
        ([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], 0.0, 0, "simple", 0, "negative"),
        ([5, 5, 5, 1, 5, 5, 5], 1.0, 3, "simple", 1, "negative"),  # ints
        (["5", "5", "5", "5", "4.5", "5", "5"], 4.5, 4, "simple", 4, "positive"),  # numeric strings
        ([5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 0.0], 0.0, 6, "complex", 0, "negative"),
    ],
)
def test_derived_columns(tmp_path, scores, min_score, criterion, target_model, bucket, label):
    sample = one_sample(tmp_path, scores_record(rec.DEFAULT_RECORD_ID, scores))
    assert sample["scores"] == [float(score) for score in scores]
    assert sample["min_score"] == min_score
    assert sample["criterion"] == criterion
    assert sample["target_model"] == target_model
    assert sample["score_bucket"] == bucket
    assert sample["label"] == label
    assert sample["origin"] == "judged"
    assert sample["synthetic_backend"] is None and sample["synthetic_model"] is None


@pytest.mark.parametrize(
    ("scores", "thresholds", "label"),
    [
        ([5.0, 5.0, 4.0, 5.0, 5.0, 5.0, 5.0], jd.Thresholds(simple=4.5, complex=4.0), "negative"),
        ([5.0, 5.0, 4.5, 5.0, 5.0, 5.0, 5.0], jd.Thresholds(simple=4.5, complex=4.0), "positive"),
        ([5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 4.5], jd.Thresholds(simple=3.0, complex=4.8), "negative"),
        ([5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 3.5], jd.Thresholds(simple=3.0, complex=3.5), "positive"),
        ([2.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0], jd.Thresholds(simple=2.0, complex=5.0), "positive"),
        (FIVE, jd.Thresholds(simple=0.0, complex=5.0), "positive"),  # 5.0 is not below 5.0
        ([5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 4.5], jd.Thresholds(simple=0.0, complex=5.0), "negative"),
    ],
)
def test_label_uses_the_configured_thresholds(tmp_path, scores, thresholds, label):
    assert one_sample(tmp_path, scores_record(rec.DEFAULT_RECORD_ID, scores), thresholds=thresholds)["label"] == label


def test_sample_carries_the_contract_columns_and_values(tmp_path):
    record = rec.judge_record("meta_Home_and_Kitchen_0_5", target_lang="ru-ru", translations={1: " Сковорода ", 2: "Сковорода 25 см"})
    sample = one_sample(tmp_path, record, model="model_b")
    assert sorted(sample) == sorted(Samples.to_schema().columns)
    assert sample["judge_version"] == "v1" and sample["model"] == "model_b"
    assert sample["record_id"] == "meta_Home_and_Kitchen_0_5"
    assert sample["target_lang"] == "ru-ru"
    assert sample["source"] == rec.DEFAULT_SOURCE
    assert sample["translation"] == "Сковорода 25 см"
    assert sample["thought"] == rec.THOUGHT_B
    assert len(sample["sample_id"]) == 16 and int(sample["sample_id"], 16) >= 0


def test_translation_is_stripped(tmp_path):
    sample = one_sample(tmp_path, rec.judge_record(translations={1: "  Lodge 铸铁煎锅\n", 2: "x"}))
    assert sample["translation"] == "Lodge 铸铁煎锅"


def _many_records() -> list[dict]:
    categories = ["All_Beauty", "Home_and_Kitchen", "Clothing_Shoes_and_Jewelry"]
    out = []
    for i in range(9):
        scores = [5.0] * 7
        scores[i % 7] = float(i % 6)
        out.append(scores_record(f"meta_{categories[i % 3]}_{i}_{i * 7}", scores, list(reversed(scores))))
    out.append(rec.judge_record("other_id"))
    return out


def test_sample_ids_are_stable_across_runs_and_paths(tmp_path):
    first = rec.write_records(tmp_path / "a" / "part.jsonl.out", _many_records())
    second = tmp_path / "b" / "renamed.jsonl.out"
    second.parent.mkdir()
    shutil.copy(first, second)
    for model in MODELS:
        ids_1 = run([first], model)[0].select("record_id", "sample_id").rows()
        ids_2 = run([first], model)[0].select("record_id", "sample_id").rows()
        ids_3 = run([str(second)], model)[0].select("record_id", "sample_id").rows()
        assert ids_1 == ids_2 == ids_3
        assert len(ids_1) == 10


def test_sample_ids_are_unique_across_records_models_and_judge_versions(tmp_path):
    path = rec.write_records(tmp_path / "part.jsonl.out", _many_records())
    ids = []
    for judge_version in ("v1", "v2"):
        for model in MODELS:
            ids += run([path], model, judge_version=judge_version)[0].get_column("sample_id").to_list()
    assert len(ids) == 40 and len(set(ids)) == 40


def test_whole_output_is_deterministic(tmp_path):
    path = rec.write_records(tmp_path / "part.jsonl.out", _many_records() + [rec.judge_record("x", model_output=False)])
    for model in MODELS:
        first, second = run([path], model), run([path], model)
        assert first[0].equals(second[0]) and first[1].equals(second[1]) and first[2] == second[2]


def test_frames_validate_against_the_pandera_models(tmp_path):
    lines = [rec.line(record) for record in _many_records()] + [case[1] for case in FAULT_CASES if case[0] != "invalid-utf8"]
    path = write_bytes_lines(tmp_path / "part.jsonl.out", lines + [b"\xff\xfe bad bytes"])
    for model in MODELS:
        raw = raw_for([path], model)
        RawJudgments.validate(raw)
        samples, quarantined, accounting = jd.process(raw, jd.Thresholds())
        Samples.validate(samples)
        QuarantinedJudgments.validate(quarantined)
        assert accounting.balanced
        assert set(quarantined.get_column("reason").to_list()) <= set(jd.QUARANTINE_REASONS)
        assert samples.get_column("origin").unique().to_list() == ["judged"]


# --- 4. duplicates ----------------------------------------------------------------------------------

DUP_ID = "meta_All_Beauty_1_2"


def test_rerun_copy_in_a_later_folder_wins(tmp_path):
    old = rec.write_records(tmp_path / "c35-v2" / "job-2024-01" / "part.jsonl.out", [scores_record(DUP_ID, [4.0] + [5.0] * 6)])
    new = rec.write_records(tmp_path / "c35-v2" / "job-2024-02" / "part.jsonl.out", [scores_record(DUP_ID, [3.0] + [5.0] * 6)])
    for files in ([old, new], [new, old]):  # the order the files are passed in does not matter
        samples, quarantined, accounting = run(files, "model_a")
        assert samples.get_column("scores").to_list() == [[3.0] + [5.0] * 6]
        assert quarantined.height == 0
        assert accounting == jd.Accounting(lines=2, valid=1, quarantined=0, duplicates=1)


def test_newest_valid_copy_wins_over_an_even_newer_invalid_copy(tmp_path):
    files = [
        rec.write_records(tmp_path / "job1" / "part.jsonl.out", [scores_record(DUP_ID, [1.0] + [5.0] * 6)]),
        rec.write_records(tmp_path / "job2" / "part.jsonl.out", [scores_record(DUP_ID, [2.0] + [5.0] * 6)]),
        rec.write_records(tmp_path / "job3" / "part.jsonl.out", [rec.judge_record(DUP_ID, error={"errorCode": 500, "errorMessage": "x"})]),
        rec.write_records(tmp_path / "job4" / "part.jsonl.out", [rec.judge_record(DUP_ID, stop_reason="max_tokens")]),
    ]
    for model in MODELS:
        samples, quarantined, accounting = run(files[::-1], model)
        assert samples.height == 1
        if model == "model_a":
            assert samples.get_column("min_score").to_list() == [2.0]
        assert quarantined.height == 0
        assert accounting == jd.Accounting(lines=4, valid=1, quarantined=0, duplicates=3)


def test_no_valid_copy_quarantines_only_the_newest(tmp_path):
    files = [
        rec.write_records(tmp_path / "job1" / "part.jsonl.out", [rec.judge_record(DUP_ID, error={"errorCode": 400, "errorMessage": "x"})]),
        rec.write_records(tmp_path / "job2" / "part.jsonl.out", [rec.judge_record(DUP_ID, text="no array")]),
        rec.write_records(tmp_path / "job3" / "part.jsonl.out", [rec.judge_record(DUP_ID, stop_reason="max_tokens")]),
    ]
    for model in MODELS:
        samples, quarantined, accounting = run(files, model)
        assert samples.height == 0
        assert quarantined.select("record_id", "source_file", "line_number", "reason").rows() == [
            (DUP_ID, files[2], 1, "truncated_output")
        ]
        assert accounting == jd.Accounting(lines=3, valid=0, quarantined=1, duplicates=2)


def test_later_line_in_the_same_file_is_newer(tmp_path):
    path = rec.write_records(
        tmp_path / "part.jsonl.out", [scores_record(DUP_ID, [4.0] + [5.0] * 6), scores_record(DUP_ID, [1.0] + [5.0] * 6)]
    )
    samples, _, accounting = run([path], "model_a")
    assert samples.get_column("min_score").to_list() == [1.0]
    assert accounting == jd.Accounting(lines=2, valid=1, quarantined=0, duplicates=1)


def test_duplicates_are_resolved_per_model(tmp_path):
    only_a = rec.judge_record(DUP_ID, entries=[rec.entry(1, "old a", rec.SCORES_A)])
    only_b = rec.judge_record(DUP_ID, entries=[rec.entry(1, "", rec.SCORES_A), rec.entry(2, "new b", rec.SCORES_B)])
    files = [
        rec.write_records(tmp_path / "job1" / "part.jsonl.out", [only_a]),
        rec.write_records(tmp_path / "job2" / "part.jsonl.out", [only_b]),
    ]
    samples_a, quarantined_a, acc_a = run(files, "model_a")
    samples_b, quarantined_b, acc_b = run(files, "model_b")
    assert samples_a.get_column("thought").to_list() == ["old a"]
    assert samples_b.get_column("thought").to_list() == ["new b"]
    assert quarantined_a.height == quarantined_b.height == 0
    assert acc_a == acc_b == jd.Accounting(lines=2, valid=1, quarantined=0, duplicates=1)


def test_accounting_identity_on_a_mixed_rerun(tmp_path):
    job1 = [scores_record(f"meta_All_Beauty_0_{i}", rec.SCORES_A) for i in range(5)]
    job1[1] = rec.judge_record("meta_All_Beauty_0_1", error={"errorCode": 400, "errorMessage": "x"})
    job1[3] = rec.judge_record("meta_All_Beauty_0_3", stop_reason="max_tokens")
    job2 = [scores_record("meta_All_Beauty_0_1", rec.SCORES_A), rec.judge_record("meta_All_Beauty_0_3", text="still broken")]
    files = [
        write_bytes_lines(tmp_path / "job1" / "part.jsonl.out", [rec.line(r) for r in job1] + ["", "  ", "garbage"]),
        rec.write_records(tmp_path / "job2" / "part.jsonl.out", job2, newline="\r\n"),
    ]
    for model in MODELS:
        samples, quarantined, accounting = run(files, model)
        assert accounting == jd.Accounting(lines=8, valid=4, quarantined=2, duplicates=2)
        assert accounting.balanced
        assert accounting.quarantine_rate == pytest.approx(2 / 8)
        assert quarantined.select("record_id", "line_number", "reason").rows() == [
            (None, 8, "unreadable_line"),
            ("meta_All_Beauty_0_3", 2, "unparseable_judge_output"),
        ]
        assert samples.get_column("record_id").to_list() == [f"meta_All_Beauty_0_{i}" for i in (0, 1, 2, 4)]


def test_accounting_of_nothing():
    accounting = jd.Accounting(0, 0, 0, 0)
    assert accounting.balanced and accounting.quarantine_rate == 0.0


# --- 5. property: random damage never raises and every line is accounted for ---------------------

BASE_RECORDS = [
    rec.judge_record("meta_All_Beauty_0_1"),
    rec.judge_record("meta_All_Beauty_0_2", shape="converse", string_ids=True),
    rec.judge_record("meta_Home_and_Kitchen_1_1", fence=True, prose="[note] {x}", thinking=True),
    rec.judge_record("meta_All_Beauty_0_1", string_scores=True, reverse=True, indent=2),  # a re-judged copy
    rec.judge_record("meta_All_Beauty_0_3", error={"errorCode": 400, "errorMessage": "bad"}),
    rec.judge_record("meta_All_Beauty_0_4", stop_reason="max_tokens", text=rec.judge_text(cut_at=120)),
    rec.judge_record("meta_All_Beauty_0_5", source="Cable <2m> & more", target_lang="ru-ru", translations={1: "Кабель <2м>", 2: "None"}),
]
BASE_LINES = [rec.line(record) for record in BASE_RECORDS]
# No \x1c-\x1f: Python's str.strip() treats them as whitespace, Rust's (polars) does not.
JUNK = st.text(alphabet=list('{}[]",:\\ \t\r\n0123456789.-abcxyz<>&/中é') + ["\x00", "\u2028", "\ufffd"], min_size=1, max_size=4)
INDEX = st.integers(min_value=0, max_value=10_000)

mutation = st.one_of(
    st.tuples(st.just("truncate"), INDEX, INDEX),
    st.tuples(st.just("delete"), INDEX, INDEX, st.integers(1, 5)),
    st.tuples(st.just("insert"), INDEX, INDEX, JUNK),
    st.tuples(st.just("replace"), INDEX, INDEX, JUNK),
    st.tuples(st.just("duplicate"), INDEX),
    st.tuples(st.just("blank"), INDEX, st.sampled_from(["", " ", "\t", "\r", "  \r", "\u3000"])),
    st.tuples(st.just("swap"), INDEX, INDEX),
    st.tuples(st.just("append_cr"), INDEX),
)
bad_bytes = st.lists(st.tuples(INDEX, st.sampled_from([b"\xff", b"\xc3", b"\xe4\xb8", b"\x80\x80", b"\xfe\xff"])), max_size=2)


def _apply(lines: list[str], op: tuple) -> list[str]:
    lines = list(lines)
    kind, i = op[0], op[1] % len(lines)
    text = lines[i]
    if kind == "truncate":
        lines[i] = text[: op[2] % (len(text) + 1)]
    elif kind == "delete":
        pos = op[2] % (len(text) + 1)
        lines[i] = text[:pos] + text[pos + op[3]:]
    elif kind == "insert":
        pos = op[2] % (len(text) + 1)
        lines[i] = text[:pos] + op[3] + text[pos:]
    elif kind == "replace":
        pos = op[2] % (len(text) + 1)
        lines[i] = text[:pos] + op[3] + text[pos + len(op[3]):]
    elif kind == "duplicate":
        lines.insert(i, text)
    elif kind == "blank":
        lines.insert(i, op[2])
    elif kind == "swap":
        j = op[2] % len(lines)
        lines[i], lines[j] = lines[j], lines[i]
    elif kind == "append_cr":
        lines[i] = text + "\r"
    return lines


def _build_files(root: Path, picks: list[int], ops: list[tuple], junk_bytes: list[tuple], split: int) -> dict[str, bytes]:
    lines = [BASE_LINES[p % len(BASE_LINES)] for p in picks]
    for op in ops:
        lines = _apply(lines, op)
    split = split % (len(lines) + 1)
    contents = {
        str(root / "job1" / "part-0.jsonl.out"): "\n".join(lines[:split]).encode("utf-8") + b"\n",
        str(root / "job2-rerun" / "part-0.jsonl.out"): "\n".join(lines[split:]).encode("utf-8"),
    }
    first = next(iter(contents))
    for pos, junk in junk_bytes:
        data = contents[first]
        pos = pos % (len(data) + 1)
        contents[first] = data[:pos] + junk + data[pos:]
    for path, data in contents.items():
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(data)
    return contents


PICKS = st.lists(st.integers(0, len(BASE_LINES) - 1), min_size=1, max_size=6)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(picks=PICKS, ops=st.lists(mutation, max_size=5), junk_bytes=bad_bytes, split=INDEX)
def test_random_damage_never_raises_and_every_line_is_accounted_for(tmp_path_factory, picks, ops, junk_bytes, split):
    root = tmp_path_factory.mktemp("damage")
    check_ingest(_build_files(root, picks, ops, junk_bytes, split))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example(picks=[0, 1], ops=[("insert", 0, 1, "#")], junk_bytes=[], split=1)  # '{#"recordId": ...}' 
@given(picks=PICKS, ops=st.lists(mutation, max_size=5), junk_bytes=bad_bytes, split=INDEX)
def test_random_damage_including_object_shaped_garbage_never_raises(tmp_path_factory, picks, ops, junk_bytes, split):
    check_ingest(_build_files(tmp_path_factory.mktemp("damage"), picks, ops, junk_bytes, split))


@settings(max_examples=30, deadline=None)
@given(picks=PICKS, seed_ops=st.lists(mutation, max_size=3))
def test_samples_from_damaged_input_still_validate(tmp_path_factory, picks, seed_ops):
    contents = _build_files(tmp_path_factory.mktemp("validate"), picks, seed_ops, [], 10_000)
    records = bo.read_records(list(contents), [1, 2]).records
    raw = bo.judgments_for_model(records, "v1", "model_a", 1)
    samples, quarantined, _ = jd.process(raw, jd.Thresholds())
    Samples.validate(samples)
    QuarantinedJudgments.validate(quarantined)
