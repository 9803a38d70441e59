"""Runs whose process is gone: detected, marked failed, their concurrency-pool slots freed.

Every run of this project records the process that executes it in its tags (`tqc/host`,
`tqc/pid`, `tqc/process_start`; set by the IO manager when the run starts). A run that is
still STARTED while that process no longer exists was killed or crashed (SIGKILL, a segfault,
an OOM kill) and will never finish by itself; left alone it keeps its pool slots, so the next
synthesis step would wait on the `bedrock` pool forever.

Two callers, one rule (`worker_health`):
- `dagster dev`: the daemon's run monitoring (enabled in dagster_home/dagster.yaml) asks the
  instance's run launcher, `ProcessAwareRunLauncher`, for each STARTED run's health, marks dead
  ones failed and frees their slots (`free_slots_after_run_end_seconds`).
- `tqc run` has no daemon: it calls `release_dead_runs` before it launches anything.

A process is identified by its pid and its start time (from /proc), so a recycled pid is not
mistaken for the old process. Runs recorded on another host are left to that host.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import dagster as dg
from dagster._core.launcher.base import CheckRunHealthResult, WorkerStatus

HOST_TAG = "tqc/host"
PID_TAG = "tqc/pid"
PROCESS_START_TAG = "tqc/process_start"
UNFINISHED = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]


def process_start(pid: int) -> str | None:
    """The process's start time in clock ticks after boot (/proc/<pid>/stat field 22); None when
    there is no such process or it is a zombie (dead, not yet reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # the command name in parentheses may hold spaces
    return None if fields[0] in ("Z", "X") else fields[19]


def this_process_tags() -> dict[str, str]:
    pid = os.getpid()
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(pid), PROCESS_START_TAG: process_start(pid) or ""}


def worker_health(run: dg.DagsterRun) -> CheckRunHealthResult:
    """RUNNING while the run's recorded process lives (or cannot be judged from here), FAILED once it is gone."""
    tags = run.tags
    if PID_TAG not in tags or tags.get(HOST_TAG) != socket.gethostname():
        return CheckRunHealthResult(WorkerStatus.RUNNING, "no process recorded on this host")
    if process_start(int(tags[PID_TAG])) == tags.get(PROCESS_START_TAG):
        return CheckRunHealthResult(WorkerStatus.RUNNING)
    return CheckRunHealthResult(
        WorkerStatus.FAILED,
        f"the process that executed this run (pid {tags[PID_TAG]} on {tags[HOST_TAG]}) is gone: killed or crashed",
    )


def release_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark every unfinished run whose process is gone as failed and free its pool slots; returns their ids."""
    released = []
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=UNFINISHED, tags={HOST_TAG: socket.gethostname()})):
        health = worker_health(run)
        if health.status == WorkerStatus.FAILED:
            instance.report_run_failed(run, f"Marked failed by tqc: {health.msg}.")
            instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
            released.append(run.run_id)
    return released


class ProcessAwareRunLauncher(dg.DefaultRunLauncher):
    """Dagster's default launcher, plus the worker health check that lets run monitoring find dead runs."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: dg.DagsterRun) -> CheckRunHealthResult:
        return worker_health(run)
