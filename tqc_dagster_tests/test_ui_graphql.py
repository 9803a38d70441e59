"""The running webserver: `dagster dev` on a free loopback port, driven through its GraphQL API.

One server for the module (see dagster_server.py). Before it starts, `tqc run` materializes judge
version v1 (everything but judge_agreement, which needs both versions) on the same instance; then
the backfill of judge version v2 is launched the way the UI's "Materialize" dialog does (one asset
backfill: every asset, partition `v2` of the root asset judge_records; Dagster derives the
downstream partitions through the partition mappings). That preparation is `start_early`: in a
one-process run it starts before the first test and the daemon's 30 s ticks pass while other
modules run (conftest.started_early). The tests check that every asset, check, job and sensor is
served with its partitions, wait for the backfill, read the materializations and check results
back, and launch one run of the `judgments` job for `v1|model_b` the way the UI launches a single
partition.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
import yaml
from click.testing import CliRunner

from tqc_dagster.assets.agreement import AGREEMENT
from tqc_dagster.assets.ingest import PROCESSED, RECORDS
from tqc_dagster.assets.samples import SYNTHETIC_SAMPLES as SYNTHETIC
from tqc_dagster.cli import main
from tqc_dagster.config import load_config
from tqc_dagster.definitions import STAGES, build_definitions
from tqc_dagster.demo_data import write_demo_data
from tqc_dagster_tests.conftest import tqc_process, write_config
from tqc_dagster_tests.dagster_server import ALL_ASSETS, JUDGE_VERSION_ASSETS, MODEL_ASSETS, DagsterServer, start_dagster

RECORDS_PER_VERSION = 120  # few records: the UI tests are about the server, not the data
SAMPLE_PARTITIONS = ["v1|model_a", "v1|model_b", "v2|model_a", "v2|model_b"]
JUDGE_VERSIONS = ["v1", "v2"]
MODELS = ["model_a", "model_b"]
BACKFILL_TIMEOUT_S = 300  # the backfill daemon ticks every 30 s; each level of the graph waits for one tick
RUN_TIMEOUT_S = 180


def tqc(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@dataclass
class UiProject:
    """v1 materialized by `tqc run`, `dagster dev` serving it on the same instance, and the v2 backfill launched."""

    config_path: Path
    server: DagsterServer
    backfill_id: str
    launched_at: float  # time.monotonic() when the backfill was launched

    def close(self) -> None:
        self.server.stop()


def start_early(folder: Path, env: dict[str, str]) -> UiProject:
    """The module's preparation, from environment `env` (conftest.started_early): returns once the backfill is launched."""
    write_demo_data(folder / "demo", records=RECORDS_PER_VERSION, seed=7)
    path = write_config(folder / "project", folder / "demo")
    not_agreement = ",".join(sorted(ALL_ASSETS - MODEL_ASSETS))
    tqc_process(env, "run", "--config", str(path), "--partition", "v1|model_a", "--partition", "v1|model_b", "--select", not_agreement)
    server = start_dagster(path, env=env)
    try:
        server.wait_until_loaded(timeout=180)
        launched_at = time.monotonic()
        launched = server.graphql(LAUNCH_BACKFILL, {"params": judge_version_backfill_params(sorted(ALL_ASSETS), "v2")})["launchPartitionBackfill"]
        if launched["__typename"] != "LaunchBackfillSuccess":
            raise RuntimeError(f"the v2 backfill was not launched: {launched}")
    except BaseException:
        server.stop()
        raise
    return UiProject(path, server, launched["backfillId"], launched_at)


@pytest.fixture(scope="module")
def project(started_early) -> UiProject:
    made = started_early.take_module(sys.modules[__name__])
    yield made
    made.close()


@pytest.fixture(scope="module")
def config_path(project) -> Path:
    return project.config_path


@pytest.fixture(scope="module")
def defs(config_path):
    return build_definitions(load_config(config_path))


@pytest.fixture(scope="module")
def server(project) -> DagsterServer:
    return project.server


@pytest.fixture(scope="module")
def repository(server) -> dict:
    """{repositoryLocationName, repositoryName} of the one code location."""
    data = server.graphql(
        "{ workspaceOrError { ... on Workspace { locationEntries { name locationOrLoadError {"
        " ... on RepositoryLocation { repositories { name } } } } } } }"
    )
    entries = data["workspaceOrError"]["locationEntries"]
    assert len(entries) == 1, entries
    repositories = entries[0]["locationOrLoadError"]["repositories"]
    assert len(repositories) == 1, repositories
    return {"repositoryLocationName": entries[0]["name"], "repositoryName": repositories[0]["name"]}


def stage_job(asset: str) -> str:
    return next(stage.job for stage in STAGES if asset in stage.assets)


def backfilled_partitions(asset: str) -> list[str]:
    """The partitions of `asset` that the v2 backfill targets."""
    if asset in JUDGE_VERSION_ASSETS:
        return ["v2"]
    if asset in MODEL_ASSETS:
        return MODELS  # judge_agreement compares v1 with v2: both model partitions follow v2
    return ["v2|model_a", "v2|model_b"]


def expected_partitions(asset: str) -> list[str]:
    if asset in JUDGE_VERSION_ASSETS:
        return JUDGE_VERSIONS
    if asset in MODEL_ASSETS:
        return MODELS
    return SAMPLE_PARTITIONS


# --- what the server shows -------------------------------------------------------------------

ASSET_NODES = """
{
  assetNodes {
    assetKey { path }
    groupName
    isPartitioned
    partitionKeys
    partitionKeysByDimension { name partitionKeys }
    jobNames
    assetChecksOrError { ... on AssetChecks { checks { name blocking } } }
  }
}
"""


@pytest.fixture(scope="module")
def asset_nodes(server) -> dict[str, dict]:
    nodes = server.graphql(ASSET_NODES)["assetNodes"]
    return {"/".join(node["assetKey"]["path"]): node for node in nodes}


def test_every_asset_is_served_with_its_partitions(asset_nodes, defs):
    assert set(asset_nodes) == ALL_ASSETS
    assert set(asset_nodes) == {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
    for asset, node in asset_nodes.items():
        assert node["isPartitioned"], asset
        assert sorted(node["partitionKeys"]) == expected_partitions(asset), asset
        assert stage_job(asset) in node["jobNames"], (asset, node["jobNames"])
    dimensions = {d["name"]: d["partitionKeys"] for d in asset_nodes[PROCESSED]["partitionKeysByDimension"]}
    assert dimensions == {"judge_version": JUDGE_VERSIONS, "model": MODELS}


def test_every_asset_check_is_served(asset_nodes, defs):
    served = {
        f"{asset}:{check['name']}": check["blocking"]
        for asset, node in asset_nodes.items()
        for check in node["assetChecksOrError"]["checks"]
    }
    graph = defs.resolve_asset_graph()
    defined = {f"{key.asset_key.to_user_string()}:{key.name}": graph.get_check_spec(key).blocking for key in graph.asset_check_keys}
    assert served == defined
    assert served["processed_samples:accounting"] is True and served["judge_agreement:kappa_per_criterion"] is False


JOBS = """
query($selector: RepositorySelector!) {
  repositoryOrError(repositorySelector: $selector) {
    ... on Repository {
      jobs { name isAssetJob description }
      partitionSets { name pipelineName partitionsOrError { ... on Partitions { results { name } } } }
      sensors { name sensorType sensorState { status } }
    }
  }
}
"""


@pytest.fixture(scope="module")
def repository_contents(server, repository) -> dict:
    return server.graphql(JOBS, {"selector": repository})["repositoryOrError"]


def test_every_stage_job_is_served_with_its_partition_set(repository_contents, defs):
    jobs = {job["name"]: job for job in repository_contents["jobs"] if not job["name"].startswith("__")}
    assert set(jobs) == {stage.job for stage in STAGES} | {stage.check_job for stage in STAGES}
    partition_sets = {ps["pipelineName"]: [p["name"] for p in ps["partitionsOrError"]["results"]] for ps in repository_contents["partitionSets"]}
    for stage in STAGES:
        assert jobs[stage.job]["isAssetJob"] and jobs[stage.job]["description"] == stage.description
        expected = {"ingest": JUDGE_VERSIONS, "publish_exports": JUDGE_VERSIONS, "agreement": MODELS}.get(stage.job, SAMPLE_PARTITIONS)
        assert sorted(partition_sets[stage.job]) == expected, stage.job
        assert sorted(defs.resolve_job_def(stage.job).partitions_def.get_partition_keys()) == expected


def test_every_sensor_is_served_with_its_default_status(repository_contents, defs):
    served = {sensor["name"]: sensor for sensor in repository_contents["sensors"]}
    assert set(served) == {sensor.name for sensor in defs.sensors} == {"batch_outputs_v1", "batch_outputs_v2", "follow_upstream"}
    assert served["follow_upstream"]["sensorType"] == "AUTO_MATERIALIZE"
    assert served["follow_upstream"]["sensorState"]["status"] == "RUNNING"
    for name in ("batch_outputs_v1", "batch_outputs_v2"):
        assert served[name]["sensorState"]["status"] == "STOPPED"


# --- the judge-version backfill --------------------------------------------------------------

LAUNCH_BACKFILL = """
mutation($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on Error { message }
    ... on PythonError { stack }
  }
}
"""

BACKFILL = """
query($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill {
      id
      status
      isAssetBackfill
      title
      error { message stack }
      assetBackfillData {
        rootTargetedPartitions { partitionKeys }
        assetBackfillStatuses {
          ... on AssetPartitionsStatusCounts {
            assetKey { path }
            numPartitionsTargeted
            numPartitionsInProgress
            numPartitionsMaterialized
            numPartitionsFailed
          }
        }
      }
      runs(limit: 100) { id status tags { key value } }
    }
    ... on Error { message }
  }
}
"""
FINISHED = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED", "FAILING", "CANCELING"}


def judge_version_backfill_params(asset_keys: list[str], judge_version: str) -> dict:
    """What the UI's Materialize dialog sends for every asset and one partition of the root asset."""
    return {
        "assetSelection": [{"path": [key]} for key in sorted(asset_keys)],
        "partitionNames": [judge_version],
        "fromFailure": False,
        "tags": [{"key": "dagster/from_ui", "value": "true"}],
        "title": f"judge version {judge_version}",
    }


def wait_for(describe, done, timeout: float, server: DagsterServer, interval: float = 2.0):
    deadline = time.monotonic() + timeout
    while True:
        value = describe()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not finished after {timeout} s: {value}\n--- server log ---\n{server.log_tail()}")
        time.sleep(interval)


@pytest.fixture(scope="module")
def v2_backfill(project) -> dict:
    """The backfill of judge version v2 (every asset), once the daemon has finished it."""
    server = project.server
    backfill = wait_for(
        lambda: server.graphql(BACKFILL, {"id": project.backfill_id})["partitionBackfillOrError"],
        lambda b: b["status"] in FINISHED,
        BACKFILL_TIMEOUT_S,
        server,
    )
    backfill["seconds"] = round(time.monotonic() - project.launched_at)
    print(f"v2 backfill {backfill['id']}: {backfill['status']} in {backfill['seconds']} s, {len(backfill['runs'])} runs")
    return backfill


def test_backfill_of_judge_version_v2_materializes_every_asset(v2_backfill):
    assert v2_backfill["isAssetBackfill"]
    assert v2_backfill["status"] == "COMPLETED_SUCCESS", v2_backfill
    assert v2_backfill["assetBackfillData"]["rootTargetedPartitions"]["partitionKeys"] == ["v2"]
    statuses = {"/".join(s["assetKey"]["path"]): s for s in v2_backfill["assetBackfillData"]["assetBackfillStatuses"]}
    assert set(statuses) == ALL_ASSETS
    # Derived through the partition mappings: v2 of the judge-version assets, v2|model_a and
    # v2|model_b of the sample assets, and both model partitions of judge_agreement.
    for asset, status in statuses.items():
        targeted = len(backfilled_partitions(asset))
        assert status["numPartitionsTargeted"] == targeted, (asset, status)
        assert status["numPartitionsMaterialized"] == targeted, (asset, status)
        assert status["numPartitionsFailed"] == 0 and status["numPartitionsInProgress"] == 0, (asset, status)
    assert v2_backfill["runs"] and all(run["status"] == "SUCCESS" for run in v2_backfill["runs"])


def run_tags(run: dict) -> dict[str, str]:
    return {tag["key"]: tag["value"] for tag in run["tags"]}


def test_backfill_runs_of_multi_partitions_carry_the_per_dimension_tags(v2_backfill):
    by_partition = {run_tags(run).get("dagster/partition"): run_tags(run) for run in v2_backfill["runs"]}
    assert {"v2", "v2|model_a", "v2|model_b", "model_a", "model_b"} <= set(by_partition), sorted(by_partition)
    for model in MODELS:
        tags = by_partition[f"v2|{model}"]
        assert tags["dagster/partition/judge_version"] == "v2"
        assert tags["dagster/partition/model"] == model
        assert tags["dagster/backfill"] == v2_backfill["id"]


LATEST_MATERIALIZATIONS = """
query($keys: [AssetKeyInput!], $partitions: [String!]) {
  assetNodes(assetKeys: $keys) {
    assetKey { path }
    latestMaterializationByPartition(partitions: $partitions) {
      partition
      runId
      metadataEntries {
        label
        __typename
        ... on IntMetadataEntry { intValue }
        ... on MarkdownMetadataEntry { mdStr }
      }
    }
  }
}
"""


def latest_materializations(server: DagsterServer, asset: str, partitions: list[str]) -> list[dict | None]:
    nodes = server.graphql(LATEST_MATERIALIZATIONS, {"keys": [{"path": [asset]}], "partitions": partitions})["assetNodes"]
    assert len(nodes) == 1, nodes
    return nodes[0]["latestMaterializationByPartition"]


def test_materializations_of_the_backfill_are_read_back(server, v2_backfill):
    backfill_runs = {run["id"] for run in v2_backfill["runs"]}
    for asset in sorted(ALL_ASSETS):
        partitions = backfilled_partitions(asset)
        events = latest_materializations(server, asset, partitions)
        assert [event and event["partition"] for event in events] == partitions, (asset, events)
        for event in events:
            assert event["runId"] in backfill_runs, (asset, event["partition"])
            assert event["metadataEntries"], (asset, event["partition"])
    processed = latest_materializations(server, PROCESSED, ["v2|model_a"])[0]
    metadata = {entry["label"]: entry for entry in processed["metadataEntries"]}
    assert metadata["label_balance_chart"]["mdStr"].startswith("![")
    assert "data:image/png;base64," in metadata["label_balance_chart"]["mdStr"]
    agreement = {entry["label"]: entry for entry in latest_materializations(server, AGREEMENT, ["model_a"])[0]["metadataEntries"]}
    assert "data:image/png;base64," in agreement["kappa_chart"]["mdStr"]


CHECK_EXECUTIONS = """
query($key: AssetKeyInput!, $check: String!, $partition: String) {
  assetCheckExecutions(assetKey: $key, checkName: $check, partition: $partition, limit: 5) {
    runId
    status
    partition
    evaluation { success severity partition }
  }
}
"""


def check_executions(server: DagsterServer, asset: str, check: str, partition: str) -> list[dict]:
    return server.graphql(CHECK_EXECUTIONS, {"key": {"path": [asset]}, "check": check, "partition": partition})["assetCheckExecutions"]


def test_check_results_of_the_backfill_are_read_back(server, v2_backfill, asset_nodes):
    backfill_runs = {run["id"] for run in v2_backfill["runs"]}
    for asset, node in sorted(asset_nodes.items()):
        partitions = backfilled_partitions(asset)
        for check in node["assetChecksOrError"]["checks"]:
            for partition in partitions:
                executions = check_executions(server, asset, check["name"], partition)
                assert executions, f"{asset}:{check['name']} has no execution for {partition}"
                latest = executions[0]
                assert latest["runId"] in backfill_runs and latest["partition"] == partition
                assert latest["evaluation"]["partition"] == partition
                if check["blocking"]:  # a failed blocking check would have failed the backfill
                    assert latest["status"] == "SUCCEEDED" and latest["evaluation"]["success"], (asset, check, latest)
                else:
                    assert latest["status"] in ("SUCCEEDED", "FAILED") and latest["evaluation"]["severity"] == "WARN"
    accounting = check_executions(server, PROCESSED, "accounting", "v2|model_a")[0]
    assert accounting["status"] == "SUCCEEDED" and accounting["evaluation"]["success"] is True


# --- one partition of one job, as the UI launches it ------------------------------------------

PARTITION_TAGS_AND_CONFIG = """
query($repositoryName: String!, $repositoryLocationName: String!, $jobName: String!, $partitionName: String!, $assetKeys: [AssetKeyInput!]!) {
  pipelineOrError(params: {pipelineName: $jobName, repositoryName: $repositoryName, repositoryLocationName: $repositoryLocationName}) {
    __typename
    ... on Pipeline {
      partition(partitionName: $partitionName, selectedAssetKeys: $assetKeys) {
        name
        runConfigOrError { ... on PartitionRunConfig { yaml } ... on PythonError { message } }
        tagsOrError { ... on PartitionTags { results { key value } } ... on PythonError { message } }
      }
    }
  }
}
"""

LAUNCH_RUN = """
mutation($params: ExecutionParams!) {
  launchPipelineExecution(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on Error { message }
    ... on PythonError { stack }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}
"""

RUN = """
query($id: ID!) {
  runOrError(runId: $id) {
    __typename
    ... on Run { runId status jobName tags { key value } }
    ... on Error { message }
  }
}
"""


def launch_as_the_ui_does(server: DagsterServer, repository: dict, asset_nodes: dict, job: str, partition_key: str) -> dict:
    """The Materialize dialog with one partition picked: the partition's tags and config, then launchPipelineExecution;
    returns the finished run."""
    assets = sorted(name for name, node in asset_nodes.items() if job in node["jobNames"])
    assert assets == sorted(next(stage.assets for stage in STAGES if stage.job == job))
    partition = server.graphql(
        PARTITION_TAGS_AND_CONFIG,
        {**repository, "jobName": job, "partitionName": partition_key, "assetKeys": [{"path": [a]} for a in assets]},
    )["pipelineOrError"]["partition"]
    tags = {t["key"]: t["value"] for t in partition["tagsOrError"]["results"]}
    judge_version, model = partition_key.split("|")
    assert tags["dagster/partition"] == partition_key
    assert tags["dagster/partition/judge_version"] == judge_version and tags["dagster/partition/model"] == model
    checks = [{"assetKey": {"path": [a]}, "name": c["name"]} for a in assets for c in asset_nodes[a]["assetChecksOrError"]["checks"]]
    launched = server.graphql(
        LAUNCH_RUN,
        {
            "params": {
                "mode": "default",
                "runConfigData": partition["runConfigOrError"]["yaml"],
                "executionMetadata": {"tags": [*({"key": k, "value": v} for k, v in tags.items()), {"key": "dagster/from_ui", "value": "true"}]},
                "selector": {**repository, "pipelineName": job, "assetSelection": [{"path": [a]} for a in assets], "assetCheckSelection": checks},
            }
        },
    )["launchPipelineExecution"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    return wait_for(
        lambda: server.graphql(RUN, {"id": launched["run"]["runId"]})["runOrError"],
        lambda r: r["status"] in ("SUCCESS", "FAILURE", "CANCELED"),
        RUN_TIMEOUT_S,
        server,
    )


def test_single_multi_partition_run_launched_as_the_ui_does(server, repository, asset_nodes, v2_backfill):
    """Runs after the backfill (it depends on v2_backfill only for ordering: one thing at a time on 2 cores)."""
    job = stage_job(PROCESSED)
    run = launch_as_the_ui_does(server, repository, asset_nodes, job, "v1|model_b")
    run_id = run["runId"]
    assert run["status"] == "SUCCESS", run
    assert run["jobName"] == job
    run_tag_values = run_tags(run)
    assert run_tag_values["dagster/partition"] == "v1|model_b"
    assert run_tag_values["dagster/partition/judge_version"] == "v1" and run_tag_values["dagster/partition/model"] == "model_b"
    for asset in sorted(next(stage.assets for stage in STAGES if stage.job == job)):
        event = latest_materializations(server, asset, ["v1|model_b"])[0]
        assert event and event["runId"] == run_id, asset
    accounting = check_executions(server, PROCESSED, "accounting", "v1|model_b")[0]
    assert accounting["runId"] == run_id and accounting["status"] == "SUCCEEDED"
    # The root asset was not part of this run: judge_records v1 stays as `tqc run` made it.
    assert latest_materializations(server, RECORDS, ["v1"])[0]["runId"] != run_id


def test_a_run_launched_in_the_ui_does_not_consume_a_partition_whose_blocking_check_failed(server, repository, asset_nodes, config_path, v2_backfill):
    """`tqc run` with a quarantine threshold v1|model_a cannot meet, on the server's instance; then the UI launches
    synthesis for that partition: the run fails on loading its input, naming the check, and stores nothing."""
    strict = config_path.parent / "tqc-strict.yaml"
    strict.write_text(yaml.safe_dump({**yaml.safe_load(config_path.read_text()), "checks": {"max_quarantine_rate": 0.0}}))
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("DAGSTER_HOME", raising=False)
        patch.delenv("TQC_CONFIG", raising=False)
        result = tqc("run", "--config", str(strict), "--partition", "v1|model_a", "--select", "raw_judgments,processed_samples,quarantined_judgments")
    assert result.exit_code == 1 and "processed_samples:quarantine_rate" in result.output, result.output
    synthesized = latest_materializations(server, SYNTHETIC, ["v1|model_a"])[0]

    run = launch_as_the_ui_does(server, repository, asset_nodes, stage_job(SYNTHETIC), "v1|model_a")
    assert run["status"] == "FAILURE", run
    assert latest_materializations(server, SYNTHETIC, ["v1|model_a"])[0] == synthesized
    with dg.DagsterInstance.from_config(str(config_path.parent / "dagster_home")) as instance:
        (failure,) = instance.all_logs(run["runId"], of_type=dg.DagsterEventType.STEP_FAILURE)
    assert "processed_samples v1|model_a failed its check quarantine_rate" in failure.dagster_event.step_failure_data.user_failure_data.description


JOB_RUNS = """
query ($repositoryLocationName: String!, $repositoryName: String!, $jobName: String!) {
  pipelineOrError(params: {repositoryLocationName: $repositoryLocationName, repositoryName: $repositoryName, pipelineName: $jobName}) {
    ... on Pipeline { runs { runId status tags { key value } } }
  }
}
"""


def test_runs_made_by_tqc_run_show_under_their_jobs(server, repository):
    """The project was materialized by `tqc run` before the server started: those runs are listed on the job pages."""
    assert repository["repositoryLocationName"] == "tqc_dagster"
    for job in ("ingest", "judgments", "synthesis", "splits", "publish_exports"):
        runs = server.graphql(JOB_RUNS, {**repository, "jobName": job})["pipelineOrError"]["runs"]
        from_cli = [run for run in runs if not {tag["key"] for tag in run["tags"]} & {"dagster/from_ui", "dagster/backfill"}]
        partitions = {tag["value"] for run in from_cli for tag in run["tags"] if tag["key"] == "dagster/partition"}
        assert partitions >= ({"v1"} if job in ("ingest", "publish_exports") else {"v1|model_a", "v1|model_b"}), (job, runs)


def test_definitions_load_as_the_webserver_loads_them(defs):
    """Every job loaded as a code server does (a job named like an op fails only here, not in-process)."""
    defs.get_repository_def().load_all_definitions()
