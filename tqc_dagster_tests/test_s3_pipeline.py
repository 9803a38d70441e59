"""The whole graph against a real S3 protocol server on loopback (moto), compared with a local run.

The same demo batch outputs are read once from a local folder into a local storage root and once
from S3 into an S3 storage root, both through `tqc run` of every asset and partition (both judge
versions, both models, and the exports). The results must be the same data:

- parquet assets without file paths in them are byte-identical (same frames, same writer);
- the frames that name their input file in a `source_file` column (judge_records, raw_judgments,
  quarantined_judgments) hold an s3:// URI in one run and a local path in the other, so they
  cannot be byte-identical; they must be frame-equal (same rows, order and dtypes) once that one
  column's prefix is mapped back;
- every export file is byte-identical except the dataset card README.md, whose
  "## Config that made it" section records the paths (storage root, inputs, s3 endpoint, cache).

Also the clear errors of `tqc run` against S3: a missing bucket, denied access, and an input
glob that matches nothing.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import polars as pl
import pytest
import yaml
from click.testing import CliRunner
from polars.testing import assert_frame_equal

from tqc_dagster.assets.ingest import RECORDS as JUDGE_RECORDS
from tqc_dagster.cli import main
from tqc_dagster.config import ConfigError, load_config
from tqc_dagster.definitions import build_definitions
from tqc_dagster.stores import SUCCESS_MARKER, input_files
from tqc_dagster_tests.conftest import write_config
from tqc_dagster_tests.s3_server import REGION, s3_server  # noqa: F401  (module-scoped fixture)

INPUT_PREFIX = "amazon-review-product-meta-data/batch-inference-output"
LAKE_PREFIX = "finetune_based_translation/lake"
JUDGE_VERSIONS = ("v1", "v2")  # the whole graph; ("v1",) would halve the module's ~30 s
TARGET_MODELS = ("simple", "complex")
CONFIG_SECTION = "## Config that made it"
PROVENANCE = "## What made it"


def tqc(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def run_tqc(config_path: Path, *args: str):
    """`tqc run` with the Dagster home beside the config, and the CLI's env changes undone afterwards."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DAGSTER_HOME", str(config_path.parent / "dagster_home"))
        patch.setenv("TQC_CONFIG", str(config_path))
        return tqc("run", "--config", str(config_path), *args)


def inputs_under(base: str) -> dict:
    """The judge versions' input globs under `base` (a local folder or s3://bucket/prefix)."""
    every = {
        "v1": {"judge_model": "anthropic.claude-3-5-sonnet-20241022-v2:0", "input": f"{base}/translation_eval_cot/c35-v2/*/*/*.jsonl.out"},
        "v2": {"judge_model": "us.anthropic.claude-3-7-sonnet-20250219-v1:0", "input": f"{base}/translation_eval_cot/c37/*/*/*.jsonl.out"},
    }
    return {name: every[name] for name in JUDGE_VERSIONS}


def s3_inputs(bucket: str, prefix: str = INPUT_PREFIX) -> dict:
    return inputs_under(f"s3://{bucket}/{prefix}")


@pytest.fixture(scope="module")
def input_bucket(s3_server, demo_dir) -> str:
    bucket = s3_server.new_bucket("batch")
    s3_server.upload_tree(demo_dir / "raw", bucket, INPUT_PREFIX)
    return bucket


@pytest.fixture(scope="module")
def runs(s3_server, demo_dir, full_run, input_bucket, tmp_path_factory):
    """A local and an S3 `tqc run` of every asset and partition on the same data: the local one is the
    session's shared full run, the S3 one reads its inputs from S3 and writes its lake there."""
    lake_bucket = s3_server.new_bucket("lake")
    s3_config = write_config(
        tmp_path_factory.mktemp("s3_run"),
        demo_dir,
        storage_root=f"s3://{lake_bucket}/{LAKE_PREFIX}",
        judge_versions=s3_inputs(input_bucket),
        s3={"endpoint_url": s3_server.url, "region": REGION},
    )
    return {
        "local": (load_config(full_run.config_path), SimpleNamespace(exit_code=0, output=full_run.output)),
        "s3": (load_config(s3_config), run_tqc(s3_config)),
        "lake_bucket": lake_bucket,
        "local_raw": str(demo_dir / "raw"),
        "s3_raw": f"s3://{input_bucket}/{INPUT_PREFIX}",
    }


def test_both_runs_succeed(runs):
    for name in ("local", "s3"):
        config, result = runs[name]
        assert result.exit_code == 0, f"{name} run:\n{result.output}"
        assert "export lines per judge version" in result.output, result.output


def s3_files(s3_server, bucket: str, prefix: str) -> dict[str, bytes]:
    return {key[len(prefix) :]: s3_server.read(bucket, key) for key in s3_server.keys(bucket, prefix)}


def local_files(root: Path) -> dict[str, bytes]:
    return {path.relative_to(root).as_posix(): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def test_the_s3_lake_holds_the_same_files_as_the_local_lake(runs, s3_server):
    local_config, _ = runs["local"]
    remote = s3_files(s3_server, runs["lake_bucket"], LAKE_PREFIX + "/")
    local = local_files(Path(local_config.storage_root))
    assert sorted(remote) == sorted(local)
    exports = [name for name in remote if name.startswith("exports/")]
    # per folder: 6 formats x 2 splits, dataset_info.json, README.md, the cards of grpo/, verl/ and qe/, _SUCCESS
    assert len(exports) == len(JUDGE_VERSIONS) * len(TARGET_MODELS) * 18
    assert not [key for key in remote if ".tmp" in key or any(part.startswith(".") for part in key.split("/"))], "staging leftovers"


def stored_assets(root: Path) -> list[str]:
    """Relative paths of the stored asset partitions (everything but the exports)."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.parquet") if p.relative_to(root).parts[0] != "exports")


def test_parquet_assets_are_byte_identical_or_frame_equal_up_to_the_source_path(runs, s3_server):
    """Byte-identical unless the frame names its input file; then frame-equal with s3://... mapped to the local path."""
    local_config, _ = runs["local"]
    root = Path(local_config.storage_root)
    identical, frame_equal = [], []
    for relative in stored_assets(root):
        remote_bytes = s3_server.read(runs["lake_bucket"], f"{LAKE_PREFIX}/{relative}")
        local_bytes = (root / relative).read_bytes()
        local, remote = pl.read_parquet(local_bytes), pl.read_parquet(remote_bytes)
        assert local.height > 0, relative
        if "source_file" not in local.columns:
            assert remote_bytes == local_bytes, relative
            identical.append(relative)
            continue
        assert local.get_column("source_file").str.starts_with(runs["local_raw"] + "/").all(), relative
        assert remote.get_column("source_file").str.starts_with(runs["s3_raw"] + "/").all(), relative
        mapped = remote.with_columns(pl.col("source_file").str.replace(runs["s3_raw"], runs["local_raw"], literal=True))
        assert_frame_equal(mapped, local)  # same rows, same order, same dtypes
        frame_equal.append(relative)
    # every asset of the graph but the exports, in every partition
    defs = build_definitions(local_config)
    graph_assets = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()} - {"exports"}
    assert {relative.split("/")[0] for relative in identical + frame_equal} == graph_assets
    assert identical and frame_equal


def config_section(card: str) -> tuple[str, dict]:
    head, marker, tail = card.partition(CONFIG_SECTION)
    assert marker, "the dataset card has no config section"
    return head, yaml.safe_load(tail.split("```yaml\n", 1)[1].split("```", 1)[0])


def leaves(tree, path=()) -> dict:
    if isinstance(tree, dict):
        return {key: value for name, sub in tree.items() for key, value in leaves(sub, (*path, name)).items()}
    return {".".join(map(str, path)): tree}


def test_every_export_file_is_identical_except_the_config_section_of_the_card(runs, s3_server):
    local_config, _ = runs["local"]
    remote = s3_files(s3_server, runs["lake_bucket"], LAKE_PREFIX + "/exports/")
    local = local_files(Path(local_config.storage_root) / "exports")
    assert sorted(remote) == sorted(local)
    cards = 0
    for name, content in local.items():
        if name.count("/") == 2 and name.endswith("/README.md"):  # <judge_version>/<target_model>/README.md
            local_head, local_config_used = config_section(content.decode())
            remote_head, remote_config_used = config_section(remote[name].decode())
            # up to "What made it", whose input fingerprint differs by nature (S3 ETags and URIs, local mtimes and paths)
            assert remote_head.partition(PROVENANCE)[0] == local_head.partition(PROVENANCE)[0], name
            a, b = leaves(local_config_used), leaves(remote_config_used)
            differing = {key for key in a.keys() | b.keys() if a.get(key) != b.get(key)}
            assert differing <= {"storage_root", "s3.endpoint_url", "s3.region", "bedrock.cache_dir"} | {f"judge_versions.{name}.input" for name in JUDGE_VERSIONS}, differing
            assert b["storage_root"].startswith("s3://") and b["judge_versions.v1.input"].startswith("s3://")
            cards += 1
        else:
            assert remote[name] == content, name
    assert cards == len(JUDGE_VERSIONS) * len(TARGET_MODELS)


def test_every_export_folder_is_marked_finished(runs, s3_server):
    keys = set(s3_server.keys(runs["lake_bucket"], LAKE_PREFIX + "/exports/"))
    for judge_version in JUDGE_VERSIONS:
        for target_model in TARGET_MODELS:
            marker = f"{LAKE_PREFIX}/exports/{judge_version}/{target_model}/{SUCCESS_MARKER}"
            assert marker in keys
            assert s3_server.read(runs["lake_bucket"], marker) == b""


def test_the_s3_run_summary_counts_the_same_rows_and_export_lines(runs):
    """The summary reads the stored files back (from S3 in one run): same tables either way."""

    def tables(output: str) -> str:
        body = output.split("\nruns:", 1)[1]
        return body.split("\nrows per asset and partition:", 1)[1].split("\nfiles:", 1)[0]

    assert tables(runs["s3"][1].output) == tables(runs["local"][1].output)


# ---- clear errors, through the command a user runs -------------------------------------------------


def test_a_missing_input_bucket_stops_tqc_run_naming_the_uri_and_bucket(s3_server, demo_dir, tmp_path, isolated_env):
    config_path = write_config(tmp_path / "p", demo_dir, judge_versions=s3_inputs("no-such-input-bucket"), s3={"endpoint_url": s3_server.url})
    result = run_tqc(config_path)
    assert result.exit_code == 1
    uri = s3_inputs("no-such-input-bucket")["v1"]["input"]
    assert f"{uri}: the S3 bucket 'no-such-input-bucket' does not exist" in result.output, result.output


def test_a_missing_storage_bucket_fails_tqc_run_naming_the_uri_and_bucket(s3_server, demo_dir, input_bucket, tmp_path, isolated_env):
    config_path = write_config(
        tmp_path / "p",
        demo_dir,
        storage_root="s3://no-such-lake-bucket/lake",
        judge_versions=s3_inputs(input_bucket),
        s3={"endpoint_url": s3_server.url},
    )
    result = run_tqc(config_path, "--partition", "v1|model_a", "--select", JUDGE_RECORDS)  # the first asset written
    assert result.exit_code == 1
    assert re.search(r"s3://no-such-lake-bucket/lake/\S+: the S3 bucket 'no-such-lake-bucket' does not exist", result.output), result.output


def test_an_s3_input_glob_matching_nothing_names_the_key_the_file_and_the_uri(s3_server, demo_dir, input_bucket, tmp_path, isolated_env):
    inputs = s3_inputs(input_bucket, prefix="no/such/prefix")
    config_path = write_config(tmp_path / "p", demo_dir, judge_versions=inputs, s3={"endpoint_url": s3_server.url})
    config = load_config(config_path)
    with pytest.raises(ConfigError) as raised:
        input_files(config, "v1")
    message = str(raised.value)
    assert "judge_versions.v1.input matches no file" in message
    assert str(config_path) in message and inputs["v1"]["input"] in message
    result = run_tqc(config_path)
    assert result.exit_code == 1
    assert f"{config_path}: judge_versions.v1.input matches no file: {inputs['v1']['input']}" in result.output


def test_denied_access_stops_tqc_run_naming_the_uri(s3_server, demo_dir, input_bucket, tmp_path, isolated_env, monkeypatch):
    denied = s3_server.iam_user("tqc-run-denied", [{"Effect": "Deny", "Action": "s3:*", "Resource": "*"}])
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", denied[0])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", denied[1])
    config_path = write_config(tmp_path / "p", demo_dir, judge_versions=s3_inputs(input_bucket), s3={"endpoint_url": s3_server.url})
    with s3_server.enforcing_iam():
        result = run_tqc(config_path)
    assert result.exit_code == 1
    assert f"{s3_inputs(input_bucket)['v1']['input']}: access denied (AccessDenied)" in result.output, result.output
