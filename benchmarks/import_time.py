"""Start-up cost: importing the definitions, building them from the repo's tqc.yaml, importing the CLI.

    .venv/bin/python benchmarks/import_time.py            # median of 3 fresh processes per figure
    .venv/bin/python benchmarks/import_time.py --runs 5

Each figure is the median over fresh Python processes of the time one step takes inside the process
(wall clock, and the process's CPU time for the step, which other work on the machine disturbs less):

- `import tqc_dagster.definitions`;
- building the Definitions in that same process, as a code server does: `defs()` (the lazy
  `@dg.definitions` function, reading the repo's tqc.yaml through TQC_CONFIG) and loading every
  definition of its repository;
- `import tqc_dagster.cli` (in processes of its own).

warm: bytecode present, from a private PYTHONPYCACHEPREFIX filled by one unmeasured run first.
cold: PYTHONPYCACHEPREFIX pointed at a new empty folder for every process and PYTHONDONTWRITEBYTECODE=1,
so every module (the standard library included) is compiled from source, as on a machine where nothing
wrote bytecode at install. Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable

# Each child prints one JSON object: {step: [wall seconds, cpu seconds]}.
DEFINITIONS_CHILD = """
import json, time
def timed(step):
    wall, cpu = time.perf_counter(), time.process_time()
    result = step()
    return result, [time.perf_counter() - wall, time.process_time() - cpu]
module, imported = timed(lambda: __import__("tqc_dagster.definitions", fromlist=["defs"]))
_, built = timed(lambda: module.defs().get_repository_def().load_all_definitions())
print(json.dumps({"import tqc_dagster.definitions": imported, "build the Definitions (repo tqc.yaml)": built}))
"""
CLI_CHILD = """
import json, time
wall, cpu = time.perf_counter(), time.process_time()
import tqc_dagster.cli
print(json.dumps({"import tqc_dagster.cli": [time.perf_counter() - wall, time.process_time() - cpu]}))
"""
STEPS = ["import tqc_dagster.definitions", "build the Definitions (repo tqc.yaml)", "import tqc_dagster.cli"]


def child_env(cache: Path, cold: bool) -> dict[str, str]:
    env = {
        **os.environ,
        "PYTHONPYCACHEPREFIX": str(cache),
        "PYTHONPATH": str(ROOT),
        "TQC_CONFIG": str(ROOT / "tqc.yaml"),
        "DAGSTER_DISABLE_TELEMETRY": "1",
        "PYTHONWARNINGS": "ignore",
    }
    if cold:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    else:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def run_child(code: str, cache: Path, cold: bool) -> dict[str, list[float]]:
    result = subprocess.run([PYTHON, "-c", code], env=child_env(cache, cold), cwd=ROOT, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"child failed:\n{result.stdout}{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def measure(cold: bool, runs: int, scratch: Path) -> dict[str, list[list[float]]]:
    samples: dict[str, list[list[float]]] = {step: [] for step in STEPS}
    warm_cache = scratch / "warm"
    if not cold:
        for code in (DEFINITIONS_CHILD, CLI_CHILD):  # fills the cache; not measured
            run_child(code, warm_cache, cold=False)
    for run in range(runs):
        for name, code in (("definitions", DEFINITIONS_CHILD), ("cli", CLI_CHILD)):
            cache = scratch / f"cold-{name}-{run}" if cold else warm_cache
            cache.mkdir(parents=True, exist_ok=True)
            for step, figures in run_child(code, cache, cold).items():
                samples[step].append(figures)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="fresh processes per figure (default 3)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="tqc-import-time-") as scratch:
        results = {mode: measure(mode == "cold", args.runs, Path(scratch) / mode) for mode in ("warm", "cold")}
        load = os.getloadavg()

    print(f"start-up cost, median of {args.runs} fresh processes per figure (wall; cpu = the process's CPU time for the step)")
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the end")
    header = f"{'':40} {'warm wall':>10} {'warm cpu':>10} {'cold wall':>10} {'cold cpu':>10}"
    print(header)
    print("-" * len(header))
    for step in STEPS:
        cells = []
        for mode in ("warm", "cold"):
            figures = results[mode][step]
            cells += [statistics.median(wall for wall, _ in figures), statistics.median(cpu for _, cpu in figures)]
        print(f"{step:40} " + " ".join(f"{value:>8.2f} s" for value in cells))
    print("runs (wall s): " + "; ".join(f"{mode} {step}: {', '.join(f'{w:.2f}' for w, _ in results[mode][step])}" for mode in ("warm", "cold") for step in STEPS))


if __name__ == "__main__":
    main()
