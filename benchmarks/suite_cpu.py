"""Where the test suite's time goes: wall-clock and CPU seconds per test module, the servers and runs it starts included.

    .venv/bin/python benchmarks/suite_cpu.py                     # the whole suite, in one process (no xdist)
    .venv/bin/python benchmarks/suite_cpu.py tqc_dagster_tests/test_pipeline.py

Runs pytest in this process with a small plugin that reads, around every test phase (setup, call, teardown),
the process's own CPU time and that of its reaped children (`resource.getrusage`: a server or `dagster dev`
counts once the test's fixture has stopped it, with the runs it launched). A module's CPU beside its wall
time says how much of it a second core could take (CPU ≈ wall) and how much is waiting (CPU << wall).
What the conftest starts early (the shared full run, a module's `start_early`) runs in background threads and
processes: it counts against the module running when it is reaped, so read those columns with that in mind.
Prints a table, slowest module first, and the totals; asserts nothing.
"""

from __future__ import annotations

import resource
import sys
import time
from collections import defaultdict

import pytest


def _cpu() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class ModuleTimes:
    def __init__(self):
        self.wall: dict[str, float] = defaultdict(float)
        self.cpu: dict[str, float] = defaultdict(float)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item, nextitem):
        wall, cpu = time.monotonic(), _cpu()
        yield
        self.wall[item.path.name] += time.monotonic() - wall
        self.cpu[item.path.name] += _cpu() - cpu


def main(args: list[str]) -> int:
    times = ModuleTimes()
    started, cpu = time.monotonic(), _cpu()
    code = pytest.main(["-q", "-p", "no:cacheprovider", "-p", "no:xdist", *args], plugins=[times])
    print(f"\n{'module':48} {'wall s':>8} {'cpu s':>8}")
    for module in sorted(times.wall, key=times.wall.get, reverse=True):
        print(f"{module:48} {times.wall[module]:8.1f} {times.cpu[module]:8.1f}")
    print(f"{'total (with collection)':48} {time.monotonic() - started:8.1f} {_cpu() - cpu:8.1f}")
    return int(code)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
