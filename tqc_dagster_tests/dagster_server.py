"""`dagster dev` for the UI tests: the real webserver and daemon on a free 127.0.0.1 port.

    with running_dagster(config_path) as server:      # waits until the code location is loaded
        server.graphql("{ version }")

The server loads the repo's `workspace.yaml` (cwd the repo root) with `TQC_CONFIG` pointing at
the test's config, and `DAGSTER_HOME` in the test's folder (`dagster_home/` beside the config,
where `tqc run --config` also records its runs; the repo's `dagster_home/dagster.yaml` is copied
there: telemetry off, the concurrency pool limit).

`dagster dev` started as `cmd &` from a script ignores SIGTERM and leaves its children (the code
server, the daemon, the webserver, launched runs) behind; so it is started in its own session
(process group) and stopped by signalling the whole group: SIGINT first (its own clean shutdown),
then SIGKILL after a timeout. Nothing is left running afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
HOME_FOLDER = "dagster_home"
LOCATION_STATUS = """
{
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on PythonError { message stack }
        }
      }
    }
    ... on PythonError { message }
  }
}
"""

# The graph as the UI should show it, by partitioning.
JUDGE_VERSION_ASSETS = {"judge_records", "exports"}
MODEL_ASSETS = {"judge_agreement"}
SAMPLE_ASSETS = {"raw_judgments", "processed_samples", "quarantined_judgments", "synthetic_samples", "trainset", "testset", "balanced_trainset"}
ALL_ASSETS = JUDGE_VERSION_ASSETS | MODEL_ASSETS | SAMPLE_ASSETS


class DagsterServerError(RuntimeError):
    """The server did not come up, or a GraphQL request failed; the message carries the server log."""


class CodeLocationLoadError(DagsterServerError):
    """The webserver is up but the code location failed to load (the definitions raised)."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prepare_home(config_path: Path) -> Path:
    """`dagster_home/` beside the config with the repo's dagster.yaml (the folder `tqc run --config` uses too)."""
    home = Path(config_path).resolve().parent / HOME_FOLDER
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(REPO_ROOT / HOME_FOLDER / "dagster.yaml", home / "dagster.yaml")
    return home


@dataclass
class DagsterServer:
    url: str
    home: Path
    log_path: Path
    process: subprocess.Popen

    def log_tail(self, chars: int = 6000) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no server log)"
        return text[-chars:]

    def graphql(self, query: str, variables: dict | None = None, timeout: float = 60) -> dict:
        """POST one query to /graphql; returns `data`, raising with the errors and the log tail otherwise."""
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(f"{self.url}/graphql", data=body, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                payload = json.loads(response.read())
        except urllib.error.HTTPError as error:
            raise DagsterServerError(f"GraphQL HTTP {error.code}: {error.read()[:2000]!r}\n--- server log ---\n{self.log_tail()}") from None
        if payload.get("errors"):
            raise DagsterServerError(f"GraphQL errors: {json.dumps(payload['errors'])[:4000]}\n--- server log ---\n{self.log_tail()}")
        return payload["data"]

    def location_status(self) -> tuple[bool, str]:
        """(loaded, description): loaded when every code location is LOADED without a load error."""
        data = self.graphql(LOCATION_STATUS, timeout=10)["workspaceOrError"]
        if data["__typename"] != "Workspace":
            return False, f"workspace error: {data.get('message')}"
        entries = data["locationEntries"]
        if not entries:
            return False, "no code location yet"
        for entry in entries:
            error = entry["locationOrLoadError"]
            if error and error["__typename"] == "PythonError":
                # A load error is final: say so at once instead of waiting for the timeout.
                raise CodeLocationLoadError(
                    f"code location {entry['name']} failed to load: {error['message']}\n{error.get('stack')}\n--- server log ---\n{self.log_tail()}"
                )
            if entry["loadStatus"] != "LOADED" or not error:
                return False, f"{entry['name']}: {entry['loadStatus']}"
        return True, "loaded"

    def wait_until_loaded(self, timeout: float = 120) -> None:
        """Poll /graphql until the code location is loaded; fail with the server log after `timeout` s."""
        deadline = time.monotonic() + timeout
        status = "webserver not answering yet"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise DagsterServerError(f"dagster dev exited with code {self.process.returncode}\n--- server log ---\n{self.log_tail()}")
            try:
                loaded, status = self.location_status()
            except (urllib.error.URLError, ConnectionError, TimeoutError, socket.timeout) as error:
                loaded, status = False, f"webserver not answering yet ({error})"
            if loaded:
                return
            time.sleep(0.5)
        raise DagsterServerError(f"the code location did not load within {timeout} s (last status: {status})\n--- server log ---\n{self.log_tail()}")

    def stop(self, timeout: float = 20) -> None:
        """SIGINT to the whole process group, then SIGKILL to whatever is left after `timeout` s."""
        pgid = self.process.pid  # start_new_session: the process is its group's leader
        _signal_group(pgid, signal.SIGINT)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        # Children (code server, daemon, runs) may outlive the leader: wait for the group to empty.
        deadline = time.monotonic() + timeout
        while _group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _group_alive(pgid):
            _signal_group(pgid, signal.SIGKILL)
        if self.process.poll() is None:
            self.process.wait(timeout=10)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    # Zombies still count for killpg(0); only live members matter.
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def server_env(config_path: Path, home: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """`base` (default: this process's environment) with the project's DAGSTER_HOME and TQC_CONFIG."""
    env = dict(os.environ if base is None else base)
    env.update(
        {
            "DAGSTER_HOME": str(home),
            "TQC_CONFIG": str(Path(config_path).resolve()),
            "DAGSTER_DISABLE_TELEMETRY": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    # The tests' own pytest settings must not leak into the server's processes.
    for name in ("PYTEST_CURRENT_TEST", "PYTEST_ADDOPTS"):
        env.pop(name, None)
    return env


def start_dagster(config_path: Path, port: int | None = None, env: dict[str, str] | None = None) -> DagsterServer:
    """Start `dagster dev` (webserver, daemon, code server) in its own process group; does not wait.
    `env`: the environment to start it from (default: this process's)."""
    config_path = Path(config_path).resolve()
    home = prepare_home(config_path)
    port = port or free_port()
    log_path = config_path.parent / "dagster-dev.log"
    log = open(log_path, "wb")
    command = [sys.executable, "-m", "dagster", "dev", "-h", "127.0.0.1", "-p", str(port), "-w", "workspace.yaml"]
    process = subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        env=server_env(config_path, home, env),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    return DagsterServer(url=f"http://127.0.0.1:{port}", home=home, log_path=log_path, process=process)


@contextmanager
def running_dagster(config_path: Path, timeout: float = 120) -> Iterator[DagsterServer]:
    """`dagster dev` loaded and answering for the body of the `with`; always stopped afterwards."""
    server = start_dagster(config_path)
    try:
        server.wait_until_loaded(timeout)
        yield server
    finally:
        server.stop()
