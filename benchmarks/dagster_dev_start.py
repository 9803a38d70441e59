"""Start-up of the UI: seconds from `dagster dev` to the webserver answering and to the code location LOADED.

    .venv/bin/python benchmarks/dagster_dev_start.py            # 3 starts, each on a fresh Dagster home
    .venv/bin/python benchmarks/dagster_dev_start.py --runs 5

Each start runs `dagster dev -w workspace.yaml` from the repo root, as `make dev` does, with TQC_CONFIG naming the
repo's tqc.yaml and DAGSTER_HOME a new temporary folder holding the repo's dagster.yaml; it polls /graphql every
0.2 s, then stops the process group. Prints figures (median and each run) and the load average; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STATUS = "{ workspaceOrError { ... on Workspace { locationEntries { loadStatus locationOrLoadError { __typename } } } } }"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def location_loaded(url: str) -> bool | None:
    """None: the webserver does not answer yet; else whether the one code location is LOADED."""
    request = urllib.request.Request(f"{url}/graphql", data=json.dumps({"query": STATUS}).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            entries = json.loads(response.read())["data"]["workspaceOrError"]["locationEntries"]
    except OSError:
        return None
    return bool(entries) and all(e["loadStatus"] == "LOADED" and e["locationOrLoadError"]["__typename"] == "RepositoryLocation" for e in entries)


def one_start(timeout: float) -> tuple[float, float]:
    """(seconds to the webserver answering, seconds to the code location loaded)."""
    with tempfile.TemporaryDirectory(prefix="tqc-dev-start-") as home:
        shutil.copyfile(REPO / "dagster_home" / "dagster.yaml", Path(home) / "dagster.yaml")
        port = free_port()
        env = {**os.environ, "DAGSTER_HOME": home, "TQC_CONFIG": str(REPO / "tqc.yaml"), "DAGSTER_DISABLE_TELEMETRY": "1"}
        started = time.monotonic()
        process = subprocess.Popen(
            [sys.executable, "-m", "dagster", "dev", "-h", "127.0.0.1", "-p", str(port), "-w", "workspace.yaml"],
            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        answering = None
        try:
            while time.monotonic() - started < timeout:
                loaded = location_loaded(f"http://127.0.0.1:{port}")
                now = time.monotonic() - started
                if loaded is not None and answering is None:
                    answering = now
                if loaded:
                    return answering, now
                time.sleep(0.2)
            raise RuntimeError(f"the code location did not load within {timeout} s")
        finally:
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    starts = [one_start(args.timeout) for _ in range(args.runs)]
    for name, index in (("webserver answering", 0), ("code location loaded", 1)):
        values = [start[index] for start in starts]
        print(f"{name:22s} median {statistics.median(values):6.1f} s   runs: {', '.join(f'{v:.1f}' for v in values)}")
    print(f"load average (1 min) before: {load:.2f}, after: {os.getloadavg()[0]:.2f}; cores: {os.cpu_count()}")


if __name__ == "__main__":
    main()
