"""Shared fixtures: every test makes its own data; nothing is read from the network or the repo's data/."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

DEMO_RECORDS = 400
# moto's request recorder (s3_server.recording) writes its log to this file, read when moto is first imported:
# set before any test module imports it, so nothing lands in the working tree.
os.environ.setdefault("MOTO_RECORDER_FILEPATH", os.path.join(tempfile.gettempdir(), f"tqc-moto-recording-{os.getpid()}"))
# Under pytest-xdist only (in one process `started_early` decides the order): the modules that take longest, mostly
# waiting on servers and daemons, started first (make test TEST_WORKERS=3: --dist loadfile --no-loadscope-reorder, modules
# handed out in this order, one per worker at a time), so that the other workers fill the waits. Without
# --no-loadscope-reorder xdist hands out the modules with the most tests first.
SLOW_MODULES_FIRST = ("test_ui_graphql.py", "test_judging_loop.py", "test_s3_pipeline.py", "test_synthesis_batch.py", "test_ui_browser.py", "test_guard_rails.py")


SCRATCH_ON_TMPFS_MIN_FREE = 4 * 2**30  # a session writes ~0.5 GB, pytest keeps the last 3, and Chromium uses /dev/shm too


def _tmpfs_has_room(folder: str) -> bool:
    try:
        stats = os.statvfs(folder)
    except OSError:
        return False
    return os.access(folder, os.W_OK) and stats.f_bavail * stats.f_frsize >= SCRATCH_ON_TMPFS_MIN_FREE


def pytest_configure(config):
    """Test scratch folders (tmp_path, the projects' lakes and Dagster instances) on tmpfs where there is one with
    room (a container's 64 MB /dev/shm is not): Dagster's SQLite instance commits every event, and an fsync per commit
    is most of a run's I/O (~2 ms each on this disk). An explicit TMPDIR or --basetemp wins."""
    if "TMPDIR" not in os.environ and config.option.basetemp is None and _tmpfs_has_room("/dev/shm"):
        os.environ["TMPDIR"] = "/dev/shm"  # inherited by xdist workers and the servers tests start
        tempfile.tempdir = None


def pytest_sessionstart(session):
    """SIGINT handled again where the shell ignored it: a shell without job control (a script) starts its
    background commands (`make test &`) with SIGINT ignored, and children inherit that, so `dagster dev` would
    ignore the SIGINT of its clean shutdown and be killed only after DagsterServer.stop's 40 s of timeouts."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_collection_modifyitems(items):
    """Under pytest-xdist the slowest modules first (SLOW_MODULES_FIRST). In one process, what is started early
    (see `started_early`) is waited for last: first the modules that need none of it, then those that need the
    shared full run, then the modules whose own preparation started early."""

    if "PYTEST_XDIST_WORKER" in os.environ:

        def rank(item) -> int:
            name = item.path.name
            return SLOW_MODULES_FIRST.index(name) if name in SLOW_MODULES_FIRST else len(SLOW_MODULES_FIRST)

    else:
        full_run_modules = {item.path for item in items if "full_run" in item.fixturenames}

        def rank(item) -> int:  # per module: a module's tests stay together, so its module fixtures are made once
            return 2 if hasattr(item.module, START_EARLY) else int(item.path in full_run_modules)

    items.sort(key=rank)  # stable: the order inside a module and among the others is kept


def write_config(folder: Path, demo_dir: Path, **overrides) -> Path:
    """A project config in `folder` reading the demo batch outputs in `demo_dir`."""
    raw = demo_dir / "raw" / "translation_eval_cot"
    config = {
        "storage_root": "lake",
        "judge_versions": {
            "v1": {"judge_model": "anthropic.claude-3-5-sonnet-20241022-v2:0", "input": f"{raw}/c35-v2/*/*/*.jsonl.out"},
            "v2": {"judge_model": "us.anthropic.claude-3-7-sonnet-20250219-v1:0", "input": f"{raw}/c37/*/*/*.jsonl.out"},
        },
        "models": {
            "model_a": {"translation_id": 1, "name": "amazon.nova-lite-v1:0"},
            "model_b": {"translation_id": 2, "name": "anthropic.claude-3-5-sonnet-20241022-v2:0"},
        },
        **overrides,
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tqc.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def run_project(folder: Path, demo_dir: Path, *args: str):
    """`tqc run --config <folder>/tqc.yaml [args]` on the demo data, with the project's own Dagster home
    (beside the config) and no TQC_CONFIG from outside: (the config's path, the CLI result)."""
    from click.testing import CliRunner

    from tqc_dagster.cli import main

    config_path = write_config(folder, demo_dir)
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("DAGSTER_HOME", raising=False)
        patch.delenv("TQC_CONFIG", raising=False)
        result = CliRunner().invoke(main, ["run", "--config", str(config_path), *args], catch_exceptions=False)
    return config_path, result


@pytest.fixture(scope="session")
def offline_datasets(tmp_path_factory):
    """Hugging Face `datasets`, offline, in a worker process of its own, its caches in a temporary folder."""
    from tqc_dagster_tests.hf_datasets import OfflineDatasets

    hf = OfflineDatasets(tmp_path_factory.mktemp("hf"))
    yield hf
    hf.close()


def made_once(tmp_path_factory, name: str, make: Callable[[Path], None]) -> Path:
    """The folder `name`, filled by `make(folder)` once per test session: under pytest-xdist the workers share
    one copy (the first to take the lock makes it, the others wait for it and read it)."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        folder = tmp_path_factory.mktemp(name, numbered=False)
        make(folder)
        return folder
    from filelock import FileLock

    shared = tmp_path_factory.getbasetemp().parent  # the session's base folder, above each worker's own
    folder, done = shared / name, shared / f"{name}.done"
    with FileLock(str(shared / f"{name}.lock")):
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)  # what a worker that failed half-way left
            folder.mkdir()
            make(folder)
            done.touch()
    return folder


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory) -> Path:
    from tqc_dagster.demo_data import write_demo_data

    return made_once(tmp_path_factory, "demo", lambda folder: write_demo_data(folder, records=DEMO_RECORDS, seed=7))


@pytest.fixture
def isolated_env(monkeypatch, tmp_path):
    """Keep DAGSTER_HOME and TQC_CONFIG changes made by the CLI inside the test."""
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.delenv("TQC_CONFIG", raising=False)
    return tmp_path


@dataclass(frozen=True)
class FullRun:
    """A project folder (tqc.yaml, lake/, dagster_home/) after `tqc run` of every asset and partition."""

    config_path: Path
    output: str

    def copy(self, folder: Path) -> Path:
        """The whole project copied into `folder` (its lake and its instance): the copy's config path.
        Tests that change the lake, rerun or check work on a copy, so the shared run stays as it was made."""
        # Without SQLite's -wal / -shm side files: the run that wrote the instance has closed it (checkpointed), and
        # tests reading the shared instance in other processes make and delete them while this copies.
        shutil.copytree(self.config_path.parent, folder, ignore=shutil.ignore_patterns("*-wal", "*-shm"))
        return folder / self.config_path.name


def tqc_process(env: dict[str, str], *args: str) -> str:
    """The installed `tqc` command (`make install`) in a process of its own, with `env` less DAGSTER_HOME, TQC_CONFIG
    (a project's instance is the `dagster_home/` beside its config) and PYTEST_CURRENT_TEST: its standard output.
    Raises RuntimeError with both outputs when it exits non-zero."""
    env = {name: value for name, value in env.items() if name not in ("DAGSTER_HOME", "TQC_CONFIG", "PYTEST_CURRENT_TEST")}
    command = [str(Path(sys.executable).with_name("tqc")), *args]
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {result.returncode}:\n{result.stdout}\n--- stderr ---\n{result.stderr}")
    return result.stdout


def make_full_run(tmp_path_factory, demo_dir: Path, env: dict[str, str]) -> FullRun:
    def make(folder: Path) -> None:
        config_path = write_config(folder / "project", demo_dir)
        (folder / "output.txt").write_text(tqc_process(env, "run", "--config", str(config_path)))

    folder = made_once(tmp_path_factory, "full_run", make)
    return FullRun(folder / "project" / "tqc.yaml", (folder / "output.txt").read_text())


@pytest.fixture(scope="session")
def full_run(started_early, demo_dir, tmp_path_factory) -> FullRun:
    """One `tqc run` of the whole graph on the demo data, computed once per test session (in a `tqc` process,
    started early in a one-process run) and shared: read it, never change it (`full_run.copy(folder)` for a
    project of your own)."""
    return started_early.take("full_run", lambda: make_full_run(tmp_path_factory, demo_dir, dict(os.environ)))


START_EARLY = "start_early"  # a test module's `start_early(folder, env)`: its preparation, with a close()


class EarlyStarts:
    """Products of the session made in other processes (a `tqc run`, a `dagster dev` and its daemon's 30 s ticks):
    started early in background threads, then taken by the fixture that first asks for them."""

    def __init__(self, tmp_path_factory):
        self.tmp_path_factory = tmp_path_factory
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="started-early")
        self.futures: dict[str, Future] = {}

    def preparation(self, module, env: dict[str, str]) -> Callable:
        """The module's `start_early(folder, env)` in a folder named after it (made now, in this thread)."""
        folder = self.tmp_path_factory.mktemp(module.__name__.rsplit(".", 1)[-1])
        return lambda: getattr(module, START_EARLY)(folder, env)

    def take_module(self, module):
        """The module's `start_early` product (see `take`), from this process's environment when it is made now."""
        return self.take(module.__name__, lambda: self.preparation(module, dict(os.environ))())

    def start(self, name: str, make: Callable) -> None:
        if name not in self.futures:
            self.futures[name] = self.pool.submit(make)

    def take(self, name: str, make: Callable):
        """What was started as `name` (waiting for it), now the caller's to close; else `make()` now. A second
        take makes a new one: a module that pytest splits (--ff, --nf) never gets a product already closed."""
        future = self.futures.pop(name, None)
        return future.result() if future is not None else make()

    def close(self) -> None:
        """Waits for what is still starting, then closes what nobody took and has a close() (servers)."""
        self.pool.shutdown(wait=True)
        for future in self.futures.values():
            if future.exception() is None and hasattr(future.result(), "close"):
                future.result().close()


@pytest.fixture(scope="session", autouse=True)
def started_early(request, tmp_path_factory):
    """In a one-process run, before the first test: the shared full run, and each collected module's
    `start_early(folder, env)`, in background threads, so that the tests ordered before their first user
    (pytest_collection_modifyitems) fill the time those processes take on the second core. Under pytest-xdist
    nothing starts early: the other workers fill the waits. The environment is the one at session start, before
    any test changes it."""
    starts = EarlyStarts(tmp_path_factory)
    if "PYTEST_XDIST_WORKER" not in os.environ:
        env = dict(os.environ)
        items = request.session.items
        if any("full_run" in item.fixturenames for item in items):
            demo = request.getfixturevalue("demo_dir")
            starts.start("full_run", lambda: make_full_run(tmp_path_factory, demo, env))
        for module in dict.fromkeys(item.module for item in items if hasattr(item.module, START_EARLY)):
            starts.start(module.__name__, starts.preparation(module, env))
    yield starts
    starts.close()
