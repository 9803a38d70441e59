"""Ingest benchmark: one judge version (both models), measured four ways, side by side.

    .venv/bin/python benchmarks/ingest.py                     # 481,109 records, the full scale
    .venv/bin/python benchmarks/ingest.py --records 50000     # smaller
    .venv/bin/python benchmarks/ingest.py --scaling           # 50k, 150k and 481k records, (a) only

(a) the project's ingest, the functions the assets run, called directly (no Dagster);
(b) a plain per-line Python parser producing the same columns, the baseline;
(c) the floor: reading the lines and msgspec-decoding each against the typed schema, one process;
(d) `tqc run` of the ingest assets of that judge version, end to end.
Each is run in a fresh subprocess, 3 times; the median wall time is reported with records/s,
CPU seconds (user + system, worker processes included: a fair measure when other work shares the
machine) and peak RSS: the process's own, and the largest of its children (the parser's worker
processes for (a), the `tqc` process tree for (d)). Demo data is generated with `tqc demo-data`
once per size under benchmarks/out/.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "out"
PYTHON = sys.executable
JUDGE_FOLDER = "raw/translation_eval_cot/c35-v2"
INGEST_ASSETS = "judge_records,raw_judgments,processed_samples,quarantined_judgments"
MODELS = {"model_a": 1, "model_b": 2}
RUNS = 3


def demo(records: int) -> Path:
    folder = OUT / f"demo-{records}"
    if not (folder / "demo_summary.json").exists():
        subprocess.run([str(Path(PYTHON).parent / "tqc"), "demo-data", "--out", str(folder), "--records", str(records), "--seed", "1"], check=True)
    return folder


def input_files(folder: Path) -> list[str]:
    return sorted(glob.glob(str(folder / JUDGE_FOLDER / "*/*/*.jsonl.out")))


# --- the four ways, each run inside its own subprocess -----------------------------------------


def project_ingest(files: list[str]) -> int:
    from tqc_dagster.core.batch_outputs import judgments_for_model, read_records
    from tqc_dagster.core.judgments import Thresholds, process

    records = read_records(files, list(MODELS.values())).records
    for model, translation_id in MODELS.items():
        process(judgments_for_model(records, "v1", model, translation_id), Thresholds())
    return records.height


def _between(text: str, start: str, end: str) -> str | None:
    i = text.find(start)
    if i < 0:
        return None
    j = text.find(end, i + len(start))
    return None if j < 0 else text[i + len(start) : j]


def baseline_ingest(files: list[str]) -> int:
    """What the old scripts did: json.loads per line, string search in the prompt, json.loads of the array."""
    rows = []
    for path in files:
        with open(path, encoding="utf-8", errors="replace") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    prompt = record["modelInput"]["messages"][0]["content"][0]["text"]
                except (ValueError, KeyError, IndexError, TypeError):
                    record, prompt = {}, ""
                output = record.get("modelOutput") or {}
                blocks = output.get("content") or output.get("output", {}).get("message", {}).get("content", [])
                text = "".join(block.get("text", "") for block in blocks if isinstance(block, dict))
                try:
                    start = text.index("[")
                    entries, _ = json.JSONDecoder().raw_decode(text[start:])
                except ValueError:
                    entries = None
                source = _between(_between(prompt, "<source>", "</source>") or "", "<content>", "</content>")
                for model, translation_id in MODELS.items():
                    block = _between(prompt, f'<translation id="{translation_id}">', "</translation>") or ""
                    entry = next((e for e in entries or [] if isinstance(e, dict) and str(e.get("id")).strip() == str(translation_id)), None)
                    rows.append(
                        {
                            "record_id": record.get("recordId"), "source_file": path, "line_number": number, "model": model,
                            "target_lang": _between(prompt, 'target_lang="', '"'), "source": source,
                            "translation": _between(block, "<content>", "</content>"),
                            "thought": entry.get("thought") if entry else None, "scores": entry.get("scores") if entry else None,
                            "stop_reason": output.get("stop_reason") or output.get("stopReason"), "error": record.get("error"),
                        }
                    )
    return len(rows) // len(MODELS)


def floor_ingest(files: list[str]) -> int:
    """Read the lines and msgspec-decode each against the reader's typed schema, in one process, nothing else."""
    from tqc_dagster.core.batch_files import Chunk, chunk_lines
    from tqc_dagster.core.batch_lines import LINE_DECODER

    lines = 0
    for path in files:
        for batch in chunk_lines(Chunk(path)):
            for line in batch:
                try:
                    LINE_DECODER.decode(line)
                except Exception:
                    pass
            lines += len(batch)
    return lines


def dagster_ingest(folder: Path) -> int:
    import yaml

    project = OUT / f"project-{folder.name}"
    project.mkdir(parents=True, exist_ok=True)
    config = {
        "storage_root": str(project / "lake"),
        "judge_versions": {"v1": {"judge_model": "anthropic.claude-3-5-sonnet-20241022-v2:0", "input": str(folder / JUDGE_FOLDER / "*/*/*.jsonl.out")}},
        "models": {name: {"translation_id": i, "name": name} for name, i in MODELS.items()},
    }
    (project / "tqc.yaml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "DAGSTER_HOME": str(project / "dagster_home")}
    (project / "dagster_home").mkdir(exist_ok=True)
    command = [str(Path(PYTHON).parent / "tqc"), "run", "--config", str(project / "tqc.yaml"), "--select", INGEST_ASSETS]
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    return 0


WAYS = {"a": project_ingest, "b": baseline_ingest, "c": floor_ingest}
LABELS = {
    "a": "(a) project ingest (both models)",
    "b": "(b) per-line Python baseline",
    "c": "(c) floor: read + msgspec decode",
    "d": "(d) tqc run of the ingest assets",
}


def measure(way: str, folder: Path) -> dict:
    """One run of a way in a fresh interpreter: wall and CPU seconds, peak RSS."""
    output = subprocess.run([PYTHON, __file__, "--child", way, "--folder", str(folder)], check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def child(way: str, folder: Path) -> None:
    """One way, timed; peak RSS of this process and of its largest child (workers, or the `tqc` tree for (d))."""
    files = input_files(folder)
    start = time.perf_counter()
    dagster_ingest(folder) if way == "d" else WAYS[way](files)
    seconds = time.perf_counter() - start
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "peak_rss_mb": own.ru_maxrss / 1024, "peak_child_rss_mb": children.ru_maxrss / 1024}))


def run(records: int, ways: str) -> dict[str, dict]:
    folder = demo(records)
    size_mb = sum(os.path.getsize(f) for f in input_files(folder)) / 1e6
    lines = json.loads((folder / "demo_summary.json").read_text())["judge_versions"]["v1"]["lines"]
    print(f"\n{records:,} judge records of v1: {lines:,} lines, {size_mb:,.0f} MB of .jsonl.out")
    results = {}
    for way in ways:
        runs = [measure(way, folder) for _ in range(RUNS)]
        seconds = statistics.median(r["seconds"] for r in runs)
        cpu = statistics.median(r["cpu_seconds"] for r in runs)
        peak, child_peak = max(r["peak_rss_mb"] for r in runs), max(r["peak_child_rss_mb"] for r in runs)
        results[way] = {"seconds": seconds, "cpu_seconds": cpu, "records_per_s": lines / seconds, "peak_rss_mb": peak, "peak_child_rss_mb": child_peak}
        print(
            f"  {LABELS[way]:<38} {seconds:7.2f} s (median of {RUNS})  cpu {cpu:7.2f} s  {lines / seconds:10,.0f} records/s  "
            f"peak RSS {peak:7,.0f} MB ({peak / size_mb:.2f}x input), largest child {child_peak:7,.0f} MB"
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=481_109)
    parser.add_argument("--scaling", action="store_true", help="(a) at 50k, 150k and 481k records")
    parser.add_argument("--ways", default="abcd", help="which of a, b, c, d to run (default: all)")
    parser.add_argument("--child", choices=sorted(LABELS), help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.folder)
        return
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.platform()}")
    if args.scaling:
        for records in (50_000, 150_000, 481_109):
            run(records, "a")
        return
    results = run(args.records, args.ways)
    if set("ab") <= set(results):
        a, b = results["a"], results["b"]
        print(f"\n  (b)/(a) = {b['seconds'] / a['seconds']:.2f} wall, {b['cpu_seconds'] / a['cpu_seconds']:.2f} cpu   (target >= 3)")
    if set("ad") <= set(results):
        print(f"  (d)-(a) = {results['d']['seconds'] - results['a']['seconds']:+.2f} s (target <= +8 s)")
    if set("ac") <= set(results):
        print(f"  (a)/(c) = {results['a']['seconds'] / results['c']['seconds']:.2f}")


if __name__ == "__main__":
    main()
