"""judge_requests: the batch input lines of a judged version, read back by the project's own reader."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tqc_dagster.config import JudgePrompt
from tqc_dagster.core.batch_outputs import parse_lines, read_records
from tqc_dagster.core.judge_requests import RequestError, build_requests, cut_files, file_contents, file_name
from tqc_dagster.demo_data import write_demo_data

IDS = [1, 2]


@pytest.fixture(scope="module")
def v1_records(tmp_path_factory) -> pl.DataFrame:
    out = tmp_path_factory.mktemp("demo")
    write_demo_data(out, records=300, seed=3)
    files = sorted(str(p) for p in (out / "raw" / "translation_eval_cot" / "c35-v2").rglob("*.jsonl.out"))
    return read_records(files, IDS).records


def _answered(lines: list[str]) -> list[bytes]:
    """The request lines as a batch output would carry them: modelInput as sent, a model output after it."""
    out = []
    for text in lines:
        line = json.loads(text)
        line["modelOutput"] = {"content": [{"type": "text", "text": "\n[]\n"}], "stop_reason": "stop_sequence", "usage": {}}
        out.append(json.dumps(line, ensure_ascii=False).encode())
    return out


def test_requests_round_trip_through_the_reader(v1_records):
    requests, skipped = build_requests(v1_records, JudgePrompt(), IDS)
    usable = v1_records.filter(pl.col("parse_error").fill_null("") != "unreadable_line").drop_nulls("record_id")
    assert requests.height == usable.get_column("record_id").n_unique()
    assert set(skipped.get_column("reason")) <= {"unreadable_line"}
    # every record of v1 is asked, or skipped with a reason
    asked = set(requests.get_column("record_id")) | set(skipped.get_column("record_id").drop_nulls())
    assert set(v1_records.get_column("record_id").drop_nulls()) <= asked | set()
    read, _ = parse_lines(_answered(requests.get_column("line").to_list()), IDS)
    original = usable.unique("record_id", keep="first").sort("record_id").select("record_id", "target_lang", "source", "translations")
    back = read.sort("record_id").select("record_id", "target_lang", "source", "translations")
    assert back.get_column("parse_error" if "parse_error" in back.columns else "record_id").len() == original.height
    # a missing translation is asked as empty content: the reader reads "" where the seed had none
    empty_is_missing = pl.col("translations").list.eval(pl.element().struct.with_fields(pl.element().struct.field("text").fill_null("")))
    assert back.with_columns(empty_is_missing).equals(original.with_columns(empty_is_missing))
    first = json.loads(requests.get_column("line")[0])
    body = first["modelInput"]
    assert body["messages"][-1] == {"role": "assistant", "content": [{"type": "text", "text": "```json"}]}
    assert body["stop_sequences"] == ["```"] and body["anthropic_version"] == "bedrock-2023-05-31"


def test_the_default_prompt_is_the_seed_prompt(v1_records, tmp_path):
    """The default template renders a record exactly as the real (demo) jobs asked it, system included."""
    requests, _ = build_requests(v1_records, JudgePrompt(), IDS)
    demo = next(Path(f) for f in v1_records.get_column("source_file").unique().sort())
    seed_lines = [json.loads(raw) for raw in demo.read_text(encoding="utf-8").splitlines() if raw.strip().startswith("{") and raw.rstrip().endswith("}")]
    by_id = {json.loads(line)["recordId"]: json.loads(line)["modelInput"] for line in requests.get_column("line")}
    compared = 0
    for seed in seed_lines:
        asked = by_id.get(seed["recordId"])
        if asked is None or "<content>" not in seed["modelInput"]["messages"][0]["content"][0]["text"].split("<translations")[1]:
            continue
        assert asked == seed["modelInput"]
        compared += 1
    assert compared > 10


def test_files_respect_the_limits():
    requests = pl.DataFrame({"record_id": [f"r{i:04d}" for i in range(1000)], "line": ["x" * 99] * 1000}).with_columns(
        pl.col("line").str.len_bytes().cast(pl.Int64).alias("bytes")
    )
    cut = cut_files(requests, records_per_file=300, max_file_bytes=1_000_000, min_records=100)
    sizes = cut.group_by("file").len().sort("file").get_column("len").to_list()
    assert sizes == [250, 250, 250, 250]
    cut = cut_files(requests, records_per_file=1000, max_file_bytes=30_000, min_records=100)
    assert cut.group_by("file").agg((pl.col("bytes") + 1).sum()).get_column("bytes").max() <= 30_000
    files = file_contents(cut)
    assert sum(data.count(b"\n") for _, data, _ in files) == 1000
    assert file_name(0, 4, files[0][2]).startswith("part-00000-of-00004-")
    with pytest.raises(RequestError, match="min_records_per_job"):
        cut_files(requests.head(50), records_per_file=300, max_file_bytes=1_000_000, min_records=100)
    with pytest.raises(RequestError, match="leaves files below min_records_per_job"):
        cut_files(requests, records_per_file=300, max_file_bytes=1024, min_records=20)
    with pytest.raises(RequestError, match="exceeds max_file_bytes"):
        cut_files(requests.with_columns(pl.lit(2000, dtype=pl.Int64).alias("bytes")), records_per_file=300, max_file_bytes=1024, min_records=1)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sizes=st.lists(st.integers(min_value=1, max_value=400), min_size=1, max_size=300),
    per_file=st.integers(min_value=1, max_value=120),
    max_bytes=st.integers(min_value=1024, max_value=20_000),
)
def test_cut_properties(sizes, per_file, max_bytes):
    """Every record in exactly one file, in order; no file past either limit; counts differ by at most one."""
    requests = pl.DataFrame({"record_id": [f"r{i:04d}" for i in range(len(sizes))], "line": ["y" * s for s in sizes]}).with_columns(
        pl.col("line").str.len_bytes().cast(pl.Int64).alias("bytes")
    )
    try:
        cut = cut_files(requests, per_file, max_bytes, min_records=1)
    except RequestError as error:
        assert "max_file_bytes" in str(error)
        return
    assert cut.get_column("record_id").to_list() == requests.get_column("record_id").to_list()
    per = cut.group_by("file").agg(pl.len(), (pl.col("bytes") + 1).sum())
    assert per.get_column("bytes").max() <= max_bytes
    counts = per.get_column("len")
    assert counts.max() - counts.min() <= 1 or counts.max() <= per_file
    assert sorted(per.get_column("file").to_list()) == list(range(per.height))


@settings(max_examples=40, deadline=None)
@given(title=st.text(min_size=1, max_size=60).filter(lambda t: t.strip() and "</content>" not in t and "<content>" not in t))
def test_any_title_round_trips(title):
    """Titles are not escaped in the prompt (as in the real jobs); the reader cuts them out by their delimiters."""
    records = pl.DataFrame(
        {"record_id": ["meta_A_0_0"], "target_lang": ["zh-cn"], "source": [title.strip(" \t\n\r\x0b\x0c\x85\xa0\u3000")],
         "translations": [[{"id": "1", "text": "甲"}, {"id": "2", "text": "乙"}]], "parse_error": [None],
         "source_file": ["f.jsonl.out"], "line_number": [1]},
        schema_overrides={"parse_error": pl.String},
    )
    if not records.get_column("source")[0]:
        return
    requests, _ = build_requests(records, JudgePrompt(), IDS)
    read, _ = parse_lines(_answered(requests.get_column("line").to_list()), IDS)
    assert read.get_column("source").to_list() == [records.get_column("source")[0].replace("\r\n", "\n").replace("\r", "\n").strip("\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")]


def test_requested_records_without_an_output_line_are_quarantined(v1_records):
    """Every record asked is accounted for: one missing_from_output row per (record, model) no output names."""
    from tqc_dagster.core.batch_outputs import judgments_for_model
    from tqc_dagster.core.judge_requests import missing_from_output
    from tqc_dagster.core.judgments import Thresholds, process

    asked = pl.DataFrame({"record_id": ["meta_X_0_1", v1_records.get_column("record_id").drop_nulls()[0]],
                          "request_file": ["s3://b/in/part-0.jsonl"] * 2, "line_number": [7, 8], "round": [0, 0]})
    missing = missing_from_output(v1_records, asked)
    assert missing.select("record_id", "source_file", "line_number", "parse_error").rows() == [("meta_X_0_1", "s3://b/in/part-0.jsonl", 7, "missing_from_output")]
    records = pl.concat([v1_records, missing])
    raw = judgments_for_model(records, "v3", "model_a", 1)
    _, quarantined, accounting = process(raw, Thresholds())
    row = quarantined.filter(pl.col("record_id") == "meta_X_0_1").row(0, named=True)
    assert (row["reason"], row["source_file"], row["line_number"]) == ("missing_from_output", "s3://b/in/part-0.jsonl", 7)
    assert accounting.balanced


def test_the_judging_estimate_follows_the_real_prompts(v1_records, tmp_path):
    from tqc_dagster.config import TqcConfig
    from tqc_dagster.estimate_judging import judging_partition

    config = TqcConfig.model_validate({
        "storage_root": str(tmp_path),
        "judge_versions": {
            "v1": {"judge_model": "anthropic.claude-3-5-sonnet-20241022-v2:0", "input": "x"},
            "v3": {"judge_model": "us.anthropic.claude-3-7-sonnet-20250219-v1:0", "judge_from": "v1",
                   "batch": {"role_arn": "arn:aws:iam::123456789012:role/r", "input_uri": "s3://b/in/", "output_uri": "s3://b/out/",
                             "records_per_file": 120, "min_records_per_job": 100, "max_concurrent_jobs": 2}},
        },
        "models": {"model_a": {"translation_id": 1, "name": "a"}, "model_b": {"translation_id": 2, "name": "b"}},
        "agreement": {"judges": ["v1", "v3"]},
    })
    row = judging_partition(v1_records, config, "v3")
    requests, _ = build_requests(v1_records, JudgePrompt(), IDS)
    fixed = len(JudgePrompt().system.encode()) + len("```json")
    assert row["records"] == requests.height
    assert row["input_tokens"] == sum(-(-(b + fixed) // 3) for b in requests.get_column("prompt_bytes"))
    assert row["output_tokens"] == requests.height * int(v1_records.get_column("output_tokens").drop_nulls().median())
    assert (row["jobs"], row["job_rounds"]) == (3, 2)
    assert row["batch_cost_usd"] == round((row["input_tokens"] * 1.5 + row["output_tokens"] * 7.5) / 1e6, 2)
    assert row["on_demand_cost_usd"] == round((row["input_tokens"] * 3.0 + row["output_tokens"] * 15.0) / 1e6, 2)


def test_unanswered_records_are_the_missing_and_the_errors(v1_records):
    """What tqc resubmit-missing asks again: no answer at all, or only Bedrock errors; a cut-off reply is an answer."""
    from tqc_dagster.core.judge_requests import unanswered

    asked = pl.DataFrame({"record_id": v1_records.get_column("record_id").drop_nulls().unique().sort().to_list() + ["meta_X_0_1"]})
    expected = (
        v1_records.drop_nulls("record_id").group_by("record_id")
        .agg((pl.col("error").is_not_null() | (pl.col("parse_error").fill_null("") == "unreadable_line")).all().alias("never"))
        .filter("never").get_column("record_id").to_list()
    )
    got = unanswered(v1_records, asked).to_list()
    assert got == sorted(expected + ["meta_X_0_1"]) and len(expected) >= 1


def test_files_off_quota_names_each_broken_limit():
    from tqc_dagster.core.judge_requests import files_off_quota

    stored = pl.DataFrame({"record_id": [f"r{i}" for i in range(9)], "request_file": ["a"] * 5 + ["b"] * 3 + ["c"],
                           "bytes": [10] * 5 + [400] * 3 + [10]})
    off = files_off_quota(stored, records_per_file=4, max_file_bytes=1000, min_records=2)
    assert off.select("request_file", "problem").rows() == [
        ("a", "more than 4 records (records_per_file)"), ("b", "more than 1000 bytes (max_file_bytes)"), ("c", "fewer than 2 records (min_records_per_job)"),
    ]
    assert files_off_quota(stored.filter(pl.col("request_file") == "a"), 5, 1000, 1).is_empty()
