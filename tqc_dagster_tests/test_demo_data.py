"""The demo data must look like real Bedrock batch outputs and its summary must be exact ground truth.

The summary's counts are checked against an independent reading of the written files, so a test of
another module that trusts the summary trusts what is actually on disk.
"""

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from tqc_dagster.demo_data import write_demo_data

RECORDS = 400
SEED = 7
GLOBS = {"v1": "raw/translation_eval_cot/c35-v2/*/*/*.jsonl.out", "v2": "raw/translation_eval_cot/c37/*/*/*.jsonl.out"}
MARKUP = re.compile(r"[&<>]")
SOURCE = re.compile(r"<source>\n<content>(.*?)</content>\n</source>", re.S)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    return out, write_demo_data(out, records=RECORDS, seed=SEED)


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _lines(path: Path) -> list[str]:
    """The lines of a file as a reader sees them: CR stripped, no phantom line after the final newline."""
    lines = path.read_text(encoding="utf-8").replace("\r\n", "\n").split("\n")
    return lines[:-1] if lines[-1] == "" else lines


def _is_number(value) -> bool:
    if isinstance(value, bool) or value is None:
        return False
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _judge_text(output: dict) -> tuple[str, str, set[str]]:
    if "output" in output:
        return output["output"]["message"]["content"][-1]["text"], output["stopReason"], {"converse"}
    kinds = {block["type"] for block in output["content"]}
    seen = {name for name in ("thinking", "redacted_thinking") if name in kinds}
    return output["content"][-1]["text"], output["stop_reason"], seen


def _observe_line(obj: dict) -> set[str]:
    """The variants and faults visible in one parsed line, judged from the line alone."""
    prompt = obj["modelInput"]["messages"][0]["content"][0]["text"]
    seen = set()
    for tid in (1, 2):
        block = re.search(rf'<translation id="{tid}">\n<translator>\w+</translator>\n(.*?)</translation>', prompt, re.S)
        content = re.fullmatch(r"<content>(.*)</content>\n", block.group(1), re.S)
        if content is None or content.group(1) in ("", "None"):
            seen.add("bad_translation")
    if MARKUP.search(SOURCE.search(prompt).group(1)):
        seen.add("escaped_chars_titles")
    if "error" in obj:
        return seen | {"batch_error"}
    text, stop_reason, shape = _judge_text(obj["modelOutput"])
    seen |= shape
    if stop_reason == "max_tokens":
        return seen | {"max_tokens"}
    if text.lstrip().startswith("```json"):
        seen.add("fenced_prose")
        text = text.split("```json\n", 1)[1].split("\n```", 1)[0]
    try:
        entries = json.loads(text)
    except json.JSONDecodeError:
        return seen | {"not_json"}
    if "\n  {" in text:
        seen.add("pretty")
    if len(entries) < 2:
        seen.add("missing_entry")
    elif int(entries[0]["id"]) == 2:
        seen.add("reordered")
    for entry in entries:
        scores = entry["scores"]
        seen |= {"string_ids"} if isinstance(entry["id"], str) else set()
        seen |= {"empty_thought"} if entry["thought"] == "" else set()
        seen |= {"wrong_score_count"} if len(scores) != 7 else set()
        seen |= {"string_scores"} if any(isinstance(s, str) and _is_number(s) for s in scores) else set()
        seen |= {"score_not_numeric"} if not all(_is_number(s) for s in scores) else set()
        seen |= {"score_out_of_range"} if any(_is_number(s) and not 0 <= float(s) <= 5 for s in scores) else set()
    return seen


def _observe(out: Path, summary: dict, version: str) -> tuple[Counter, dict]:
    """Counts of every variant as found in the files, and the parsed lines per job folder."""
    seen, parsed = Counter(), {}
    for job in summary["judge_versions"][version]["jobs"]:
        parsed[job["folder"]] = []
        for name in job["files"]:
            path = out / name
            seen["crlf_files"] += b"\r\n" in path.read_bytes()
            for line in _lines(path):
                if not line.strip():
                    seen["blank_lines"] += 1
                    continue
                seen["lines"] += 1
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError:
                    seen["truncated_line"] += 1
                    continue
                parsed[job["folder"]].append(obj)
    main, rerun = parsed.values()
    seen.update(name for obj in main for name in _observe_line(obj))
    main_ids = {obj["recordId"] for obj in main}
    seen["rerun_duplicates"] = sum(obj["recordId"] in main_ids for obj in rerun)
    return seen, parsed


def _valid_scores(obj: dict) -> dict[int, list[float]] | None:
    """The scores per translation id of a line whose judge answered in the plain common shape."""
    if "modelOutput" not in obj or "content" not in obj["modelOutput"]:
        return None
    output = obj["modelOutput"]
    if output["stop_reason"] != "stop_sequence":
        return None
    try:
        entries = json.loads(output["content"][-1]["text"])
    except json.JSONDecodeError:
        return None
    if len(entries) != 2 or not all(
        len(e["scores"]) == 7 and all(_is_number(s) and 0 <= float(s) <= 5 for s in e["scores"]) for e in entries
    ):
        return None
    return {int(e["id"]): [float(s) for s in e["scores"]] for e in entries}


def test_same_seed_gives_identical_bytes_and_another_seed_differs(tmp_path):
    write_demo_data(tmp_path / "a", records=RECORDS, seed=SEED)
    write_demo_data(tmp_path / "b", records=RECORDS, seed=SEED)
    write_demo_data(tmp_path / "c", records=RECORDS, seed=SEED + 1)
    first = _tree(tmp_path / "a")
    assert first == _tree(tmp_path / "b")
    assert first != _tree(tmp_path / "c")


def test_rerunning_into_the_same_folder_replaces_the_old_jobs(tmp_path):
    write_demo_data(tmp_path, records=50, seed=1)
    summary = write_demo_data(tmp_path, records=50, seed=2)
    for version, pattern in GLOBS.items():
        assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.glob(pattern)) == \
            summary["judge_versions"][version]["files"]


def test_foreign_batch_outputs_are_not_overwritten(tmp_path):
    foreign = tmp_path / "raw/translation_eval_cot/c37/job/ts/real.jsonl.out"
    foreign.parent.mkdir(parents=True)
    foreign.write_text("{}\n")
    with pytest.raises(FileExistsError):
        write_demo_data(tmp_path, records=10)
    assert foreign.exists()


def test_layout_matches_the_config_globs_and_manifests_agree(demo):
    out, summary = demo
    assert json.loads((out / "demo_summary.json").read_text()) == summary
    for version, pattern in GLOBS.items():
        info = summary["judge_versions"][version]
        files = sorted(p.relative_to(out).as_posix() for p in out.glob(pattern))
        assert files == info["files"]
        main, rerun = info["jobs"]
        assert main["folder"] < rerun["folder"] and files[-1] in rerun["files"]  # the re-run sorts last
        for job in info["jobs"]:
            assert re.fullmatch(r"[a-z0-9]{12}", job["job_id"])
            assert re.fullmatch(r".*/[a-z0-9]{12}/20\d{6}T\d{6}Z", job["folder"])
            lines = [line for name in job["files"] for line in _lines(out / name) if line.strip()]
            parsed = []
            for line in lines:
                try:
                    parsed.append(json.loads(line))
                except json.JSONDecodeError:
                    pass
            usage = [obj["modelOutput"]["usage"] for obj in parsed if "modelOutput" in obj]
            manifest = json.loads((out / job["folder"] / "manifest.json.out").read_text())
            errors = sum("error" in obj for obj in parsed)
            assert manifest == job["manifest"] == {
                "totalRecordCount": len(lines), "processedRecordCount": len(lines),
                "successRecordCount": len(lines) - errors, "errorRecordCount": errors,
                "inputTokenCount": sum(u.get("input_tokens", u.get("inputTokens", 0)) for u in usage),
                "outputTokenCount": sum(u.get("output_tokens", u.get("outputTokens", 0)) for u in usage),
            }


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_every_variant_and_fault_is_in_the_files_as_counted(demo, version):
    out, summary = demo
    info = summary["judge_versions"][version]
    seen, _ = _observe(out, summary, version)
    assert seen["lines"] == info["lines"] and seen["blank_lines"] == info["blank_lines"] > 0
    for name, expected in info["variants"].items():
        assert seen[name] == expected, name
        assert expected > 0 or (version == "v1" and name in ("thinking", "redacted_thinking")), name


def _valid_ids(obj: dict) -> set[int]:
    """The translation ids of a parsed line that make a valid sample under the data contract's rules."""
    prompt = obj["modelInput"]["messages"][0]["content"][0]["text"]
    if "modelOutput" not in obj:
        return set()
    text, stop_reason, _ = _judge_text(obj["modelOutput"])
    if stop_reason == "max_tokens":
        return set()
    if text.lstrip().startswith("```json"):
        text = text.split("```json\n", 1)[1].split("\n```", 1)[0]
    try:
        entries = json.loads(text)
    except json.JSONDecodeError:
        return set()
    valid = set()
    for entry in entries:
        tid, scores = int(entry["id"]), entry["scores"]
        content = re.search(rf'<translation id="{tid}">\n<translator>\w+</translator>\n<content>(.*?)</content>', prompt, re.S)
        if content and content.group(1) not in ("", "None") and entry["thought"] and len(scores) == 7 \
                and all(_is_number(s) and 0 <= float(s) <= 5 for s in scores):
            valid.add(tid)
    return valid


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_sample_counts_follow_the_contract_rules(demo, version):
    out, summary = demo
    info = summary["judge_versions"][version]
    seen, parsed = _observe(out, summary, version)
    copies = Counter()  # (recordId, translation id) -> copies
    valid = set()
    for obj in (obj for objs in parsed.values() for obj in objs):
        ok = _valid_ids(obj)
        for tid in (1, 2):
            copies[obj["recordId"], tid] += 1
            if tid in ok:
                valid.add((obj["recordId"], tid))
    quarantined = 2 * seen["truncated_line"] + sum(n for key, n in copies.items() if key not in valid)
    duplicates = sum(n - 1 for key, n in copies.items() if key in valid)
    samples = info["samples"]
    assert (samples["valid"], samples["quarantined"], samples["duplicates"]) == (len(valid), quarantined, duplicates)
    assert samples["valid"] + samples["quarantined"] + samples["duplicates"] == 2 * info["lines"]
    assert samples["quarantined"] == sum(samples["quarantined_by_fault"].values())


def test_reruns_rejudge_failed_records_and_rescore_some_valid_ones(demo):
    out, summary = demo
    _, parsed = _observe(out, summary, "v1")
    main, rerun = ({obj["recordId"]: obj for obj in objs} for objs in parsed.values())
    assert all(record_id in main and _valid_ids(obj) == {1, 2} for record_id, obj in rerun.items())
    failed = [r for r in rerun if "error" in main[r]]
    rescored = [r for r in rerun if "error" not in main[r]]
    assert len(failed) == summary["judge_versions"]["v1"]["variants"]["batch_error"] and rescored
    assert all(_valid_scores(main[r]) != _valid_scores(rerun[r]) for r in rescored if _valid_scores(main[r]))


def test_the_last_line_of_one_file_is_cut_without_a_newline(demo):
    out, summary = demo
    for info in summary["judge_versions"].values():
        endings = [(out / name).read_bytes()[-1:] for name in info["files"]]
        assert endings.count(b"\n") == len(endings) - 1


def test_both_versions_judge_the_same_records_with_correlated_scores(demo):
    out, summary = demo
    main = {}
    for version in ("v1", "v2"):
        _, parsed = _observe(out, summary, version)
        main[version] = {obj["recordId"]: obj for obj in next(iter(parsed.values()))}
    common = main["v1"].keys() & main["v2"].keys()
    assert len(common) >= RECORDS - 2 * summary["judge_versions"]["v1"]["variants"]["truncated_line"]
    assert all(main["v1"][r]["modelInput"] == main["v2"][r]["modelInput"] for r in common)
    same = differ = 0
    for record_id in common:
        v1, v2 = _valid_scores(main["v1"][record_id]), _valid_scores(main["v2"][record_id])
        if v1 and v2:
            pairs = [(a, b) for tid in (1, 2) for a, b in zip(v1[tid], v2[tid])]
            same += sum(a == b for a, b in pairs)
            differ += sum(a != b for a, b in pairs)
            assert all(abs(a - b) <= 1 for a, b in pairs)
    assert differ > 0 and same / (same + differ) > 0.9


def test_titles_keep_unescaped_markup(demo):
    out, summary = demo
    _, parsed = _observe(out, summary, "v1")
    sources = [SOURCE.search(obj["modelInput"]["messages"][0]["content"][0]["text"]).group(1)
               for objs in parsed.values() for obj in objs]
    for char in "&<>":
        assert any(char in s for s in sources), char
    assert not any("&amp;" in s or "&lt;" in s or "&gt;" in s for s in sources)


def test_scores_are_skewed_high_and_thoughts_agree_with_them(demo):
    out, summary = demo
    _, parsed = _observe(out, summary, "v2")
    low_criteria, flawless, total = Counter(), 0, 0
    labels = ("Refusal", "Non-target language", "Added words", "Spelling and symbols",
              "Quantities and units", "Format", "Key word choice")
    for obj in next(iter(parsed.values())):
        if _valid_scores(obj) is None:
            continue
        for entry in json.loads(obj["modelOutput"]["content"][-1]["text"]):
            scores, thought = [float(s) for s in entry["scores"]], entry["thought"]
            if "missing or empty" in thought:
                continue
            total += 1
            low = [c for c, s in enumerate(scores) if s < 5]
            flawless += not low
            low_criteria.update(low)
            assert all(s * 2 == int(s * 2) and 0 <= s <= 5 for s in scores)
            assert {c for c, label in enumerate(labels) if f"{label} (" in thought} == set(low), thought
    assert 0.5 < flawless / total < 0.8
    assert low_criteria.most_common(1)[0][0] == 6
    assert low_criteria[0] < low_criteria[6] / 2 and low_criteria[5] < low_criteria[6] / 2  # rare, if less than in the real set
