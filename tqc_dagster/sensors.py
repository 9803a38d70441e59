"""Sensors: one per judge version, requesting an ingest run when its batch outputs change.

A file counts once it is finished: its job folder holds `manifest.json.out` (Bedrock writes
it when the job ends) or its size and version are the same on two ticks in a row. A finished
file that is new, rewritten or gone since the last request makes the sensor request the
judge version's `judge_records`; the assets downstream follow through their eager automation
conditions. The cursor (what was seen and what was requested) is stored by Dagster, so it
survives restarts.
"""

from __future__ import annotations

import hashlib
import json

import dagster as dg

from tqc_dagster.config import TqcConfig
from tqc_dagster.core.manifests import MANIFEST_NAME
from tqc_dagster.stores import FileState, StorageError, join, parent, store_for

TICK_SECONDS = 60


def _states(raw: dict) -> dict[str, FileState]:
    return {uri: FileState(*state) for uri, state in raw.items()}


def _raw(states: dict[str, FileState]) -> dict:
    return {uri: [state.size, state.version] for uri, state in sorted(states.items())}


def evaluate(seen: dict[str, FileState], requested: dict[str, FileState], current: dict[str, FileState], finished_folders: set[str]):
    """(changed files, new requested state) for one tick; pure, so the rules are testable on their own."""
    finished = {uri: state for uri, state in current.items() if parent(uri) in finished_folders or seen.get(uri) == state}
    changed = sorted(uri for uri, state in finished.items() if requested.get(uri) != state)
    changed += sorted(uri for uri in requested if uri not in current)
    return changed, {**{uri: s for uri, s in requested.items() if uri in current}, **finished}


def build_input_sensors(config: TqcConfig, job_name: str) -> list[dg.SensorDefinition]:
    # A version judged here (judge_from) is ingested by its batch_jobs sensor once every job is done (batch_sensors.py).
    return [_input_sensor(config, v, job_name) for v in config.judge_version_names if config.judge_versions[v].judge_from is None]


def _input_sensor(config: TqcConfig, judge_version: str, job_name: str) -> dg.SensorDefinition:
    pattern = config.judge_versions[judge_version].input

    @dg.sensor(
        name=f"batch_outputs_{judge_version}",
        job_name=job_name,
        minimum_interval_seconds=TICK_SECONDS,
        description=f"Requests judge_records of {judge_version} when a finished .jsonl.out under {pattern} is new, rewritten or gone.",
    )
    def batch_outputs_sensor(context: dg.SensorEvaluationContext):
        cursor = {"seen": {}, "requested": {}, "requests": 0, **(json.loads(context.cursor) if context.cursor else {})}
        store = store_for(pattern, config.s3)
        try:
            current = store.glob_states(pattern)
            manifests = store.glob(join(parent(pattern), MANIFEST_NAME))
        except StorageError as error:
            return dg.SkipReason(str(error))
        changed, requested = evaluate(_states(cursor["seen"]), _states(cursor["requested"]), current, {parent(m) for m in manifests})
        count = cursor["requests"] + (1 if changed else 0)
        new_cursor = json.dumps({"seen": _raw(current), "requested": _raw(requested), "requests": count}, sort_keys=True)
        if not changed:
            return dg.SensorResult(skip_reason=f"no finished change under {pattern}", cursor=new_cursor)
        context.log.info(f"{len(changed)} changed batch output file(s) for {judge_version}: {changed[:5]}")
        change = [[uri, _raw({uri: current[uri]})[uri] if uri in current else None] for uri in changed]
        digest = hashlib.sha256(json.dumps(change).encode()).hexdigest()[:16]
        # The request number keeps run keys unique: the same change twice (a file restored) is two requests.
        request = dg.RunRequest(run_key=f"{judge_version}|{count}|{digest}", partition_key=judge_version)
        return dg.SensorResult(run_requests=[request], cursor=new_cursor)

    return batch_outputs_sensor
