"""Blocking checks across runs: an asset partition whose blocking check did not pass feeds nothing downstream.

Dagster enforces a blocking check only inside the run that evaluates it, and it stores the
asset's output before the check fails (see design.md, "Blocking checks block only inside one
run"). So the stored partition stays readable to every later run: the next stage of `tqc run`,
a job launched from the UI, a backfill. This module is the one rule all of them consult: the
latest settled execution of every blocking check of the partition, from the instance's event
log, must have passed. A check that failed, or whose run ended (failed, killed, canceled) before
it was evaluated, blocks; one still in progress defers to the execution before it.

- The IO manager refuses to load a blocked upstream partition (`assert_loadable`), which covers
  every run whatever launched it.
- `tqc run` skips the downstream partitions of a blocked one before launching them
  (`blocked_parents`), and says why.
- The automation sensor waits for `AutomationCondition.all_deps_blocking_checks_passed()`
  (partitions.FOLLOW_UPSTREAM).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import dagster as dg
from dagster._core.event_api import PartitionKeyFilter
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus


@dataclass(frozen=True)
class Block:
    """Why an asset partition may not feed its downstream assets."""

    asset: str
    partition: str
    check: str  # the check's name; "step" when the step itself failed in this `tqc run`
    explanation: str

    @property
    def headline(self) -> str:
        what = "failed" if self.check == "step" else f"failed its check {self.check}"
        return f"{self.asset} {self.partition} {what}"

    def __str__(self) -> str:
        return f"{self.headline}: {self.explanation}"


def gating_checks(definitions: Iterable[dg.AssetsDefinition]) -> dict[str, list[dg.AssetCheckKey]]:
    """{asset name: the blocking checks that gate it}: every blocking check of each check step that targets it.

    Step-wide, as in Dagster's own run: a failed blocking check fails its step, and what follows any
    asset that step checks waits for it (e.g. trainset and testset, checked together).
    """
    gates: dict[str, set[dg.AssetCheckKey]] = {}
    for definition in definitions:
        specs = list(definition.check_specs)
        blocking = {dg.AssetCheckKey(spec.asset_key, spec.name) for spec in specs if spec.blocking}
        targets = set(definition.keys) | {spec.asset_key for spec in specs}  # what the step makes, and what it checks
        for key in targets if blocking else ():
            gates.setdefault(key.to_user_string(), set()).update(blocking)
    return {asset: sorted(checks, key=str) for asset, checks in gates.items()}


HISTORY = 10  # executions looked at per check, newest first, to get past those still in progress


def _verdict(instance: dg.DagsterInstance, key: dg.AssetCheckKey, partition: str) -> str | None:
    """Why the check's latest settled execution on the partition blocks, or None when it passed (or never settled).

    An execution still in progress (its run queued or going, e.g. a backfill re-running a check while
    the next runs start) is passed over for the one before it; one whose run ended without evaluating
    it (failed, killed, canceled) blocks.
    """
    history = instance.event_log_storage.get_asset_check_execution_history(key, limit=HISTORY, partition_filter=PartitionKeyFilter(key=partition))
    for record in history:
        if record.status == AssetCheckExecutionRecordStatus.SUCCEEDED:
            return None
        if record.status == AssetCheckExecutionRecordStatus.FAILED:
            return record.event.dagster_event.event_specific_data.description or "see the check's metadata in the UI"
        run = instance.get_run_by_id(record.run_id)
        if run is not None and run.is_finished and run.status != dg.DagsterRunStatus.SUCCESS:
            return f"not evaluated: run {record.run_id} ended {run.status.value.lower()} before the check ran"
    return None


def failed_blocking_checks(instance: dg.DagsterInstance, partition: str, checks: Sequence[dg.AssetCheckKey]) -> list[Block]:
    """The checks (blocking ones, for one partition) whose latest settled execution did not pass.

    A partition that was never checked (no execution recorded) is not blocked.
    """
    verdicts = {key: _verdict(instance, key, partition) for key in sorted(checks, key=str)}
    return [Block(key.asset_key.to_user_string(), partition, key.name, why) for key, why in verdicts.items() if why is not None]


def assert_loadable(instance: dg.DagsterInstance, partitions: Sequence[str], checks: Sequence[dg.AssetCheckKey]) -> None:
    """Raise a dg.Failure naming every blocking check that did not pass on the partitions about to be loaded."""
    blocks = [block for partition in partitions for block in failed_blocking_checks(instance, partition, checks)]
    if blocks:
        raise dg.Failure(
            description="Upstream data did not pass its blocking checks, so nothing downstream is computed from it:\n"
            + "\n".join(f"- {block}" for block in blocks)
            + "\nFix the cause and rematerialize the upstream partition; this step can then run.",
            allow_retries=False,
        )


def blocked_parents(
    instance: dg.DagsterInstance,
    asset_graph,
    assets: Sequence[str],
    partition: str,
    failed_here: Mapping[tuple[str, str], Block],
    blocking_checks: Mapping[str, Sequence[dg.AssetCheckKey]],
) -> list[Block]:
    """Why the run of `assets` for `partition` must not start: parent partitions (outside `assets`) that
    failed earlier in this invocation (`failed_here`, by (asset, partition)) or whose blocking checks did not pass."""
    parents = {
        (parent.asset_key.to_user_string(), parent.partition_key)
        for asset in assets
        for parent in asset_graph.get_parents_partitions(dg.AssetKey(asset), partition).parent_partitions
    }
    blocks: list[Block] = []
    for parent, parent_partition in sorted(parents):
        if parent in assets:
            continue  # the same run: Dagster itself skips what follows a failed step or blocking check
        if (parent, parent_partition) in failed_here:
            blocks.append(failed_here[(parent, parent_partition)])
        else:
            blocks += failed_blocking_checks(instance, parent_partition, blocking_checks.get(parent, ()))
    return list(dict.fromkeys(blocks))  # siblings of one step share their gate: name it once
