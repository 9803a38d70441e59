"""The stores (tqc_dagster/stores.py) against a real S3 protocol server on loopback (moto) and a local folder.

- S3 globs list with pagination and match like local globs (`*` and `?` stop at `/`);
- writes are atomic: a killed upload or write leaves no partial object or file under the final
  name, and an earlier version stays readable; an export folder is finished only with `_SUCCESS`;
- a missing bucket or denied access is a StorageError naming the URI.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

import tqc_dagster
from tqc_dagster.s3_store import S3Store
from tqc_dagster.stores import SUCCESS_MARKER, LocalStore, StorageError
from tqc_dagster_tests.s3_server import s3_server  # noqa: F401  (module-scoped fixture)

PACKAGE_ROOT = str(Path(tqc_dagster.__file__).resolve().parents[1])


def put_keys(server, bucket: str, keys: list[str], body: bytes = b"") -> None:
    client = server.client()
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda key: client.put_object(Bucket=bucket, Key=key, Body=body), keys))


def write_local_tree(root: Path, relative_paths: list[str]) -> None:
    for relative in relative_paths:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")


def local_matches(root: Path, pattern: str) -> list[str]:
    """LocalStore glob results as relative paths; files only (S3 has objects, not directories)."""
    return sorted(os.path.relpath(path, root) for path in LocalStore().glob(str(root / pattern)) if os.path.isfile(path))


def s3_matches(store: S3Store, bucket: str, prefix: str, pattern: str) -> list[str]:
    base = f"s3://{bucket}/{prefix}/"
    found = store.glob(base + pattern)
    assert all(uri.startswith(base) for uri in found)
    return sorted(uri[len(base) :] for uri in found)


# ---- globs --------------------------------------------------------------------------------------


def test_s3_glob_pages_through_more_than_1000_keys_and_matches_only_its_depth(s3_server, tmp_path):
    bucket = s3_server.new_bucket("glob")
    matching = [f"job{i:04d}/20250203T162701Z/meta_{i % 7}.jsonl.out" for i in range(1010)]
    other_depths = (
        [f"job{i:04d}/top_{i}.jsonl.out" for i in range(20)]  # one level too shallow
        + [f"job{i:04d}/20250203T162701Z/nested/deep.jsonl.out" for i in range(20)]  # one level too deep
        + [f"job{i:04d}/20250203T162701Z/manifest.json.out" for i in range(20)]  # other name
        + [f"job{i:04d}/20250203T162701Z/meta.jsonl.out.partial" for i in range(5)]
        + ["loose.jsonl.out", "a/b/c/d/e.jsonl.out"]
    )
    put_keys(s3_server, bucket, [f"in/{key}" for key in matching + other_depths])
    write_local_tree(tmp_path, matching + other_depths)

    store = S3Store(s3_server.resource())
    pages = []
    store.client.meta.events.register("after-call.s3.ListObjectsV2", lambda parsed, **_: pages.append(parsed.get("KeyCount")))
    states = store.glob_states(f"s3://{bucket}/in/*/*/*.jsonl.out")

    assert len(pages) >= 2 and max(pages) <= 1000, pages  # list_objects_v2 pages at 1000 keys
    assert sorted(uri.split("/in/", 1)[1] for uri in states) == sorted(matching)
    assert all(state.size == 0 and state.version for state in states.values())
    assert list(states) == sorted(states)
    assert s3_matches(store, bucket, "in", "*/*/*.jsonl.out") == local_matches(tmp_path, "*/*/*.jsonl.out") == sorted(matching)


SEGMENTS = ["a", "b", "x", "ab", "ba", "a.txt", "b.txt", "f.jsonl.out", "g.jsonl.out", "f.jsonl.out.tmp", "manifest.json.out", "a-b", "x.y"]
PATTERNS = [
    "*/*/*.jsonl.out",
    "a/*.txt",
    "a/?/x",
    "a/[ab]*",
    "*",
    "*/*",
    "*/x",
    "?/*",
    "a/*/*",
    "[ab]/*.txt",
    "*a*/*",
    "a/b*/*.jsonl.out",
    "??/*",
    "*/*/*/*",
    "x.y",
    "[a-b]*/[x]",
    "*.txt",
]


def trees() -> st.SearchStrategy[list[str]]:
    """Relative file paths of 1-4 segments; no path is also a folder of another (impossible locally)."""
    path = st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=4).map("/".join)

    def consistent(paths: list[str]) -> list[str]:
        files = sorted(set(paths))
        return [p for p in files if not any(other.startswith(p + "/") for other in files)]

    return st.lists(path, min_size=1, max_size=14).map(consistent)


@pytest.fixture(scope="module")
def tree_bucket(s3_server) -> str:
    return s3_server.new_bucket("trees")


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(tree=trees())
def test_s3_glob_matches_like_a_local_glob_on_the_same_tree(s3_server, tree_bucket, tmp_path, tree):
    """Each example gets its own prefix in the bucket and its own local folder; local matches are files only."""
    prefix = f"t{uuid.uuid4().hex[:8]}"
    root = tmp_path / prefix
    write_local_tree(root, tree)
    bucket = tree_bucket
    put_keys(s3_server, bucket, [f"{prefix}/{relative}" for relative in tree])
    store = S3Store(s3_server.resource())
    for pattern in PATTERNS:
        assert s3_matches(store, bucket, prefix, pattern) == local_matches(root, pattern), pattern


def test_a_negated_character_class_matches_like_a_local_glob(s3_server, tmp_path):
    tree = ["a/x", "b/x", "c/x", "!/x"]
    bucket = s3_server.new_bucket("neg")
    put_keys(s3_server, bucket, [f"p/{relative}" for relative in tree])
    write_local_tree(tmp_path, tree)
    assert s3_matches(S3Store(s3_server.resource()), bucket, "p", "[!a]/x") == local_matches(tmp_path, "[!a]/x") == ["!/x", "b/x", "c/x"]


def test_wildcards_skip_hidden_names_on_s3_as_locally(s3_server, tmp_path):
    tree = ["job/run/meta.jsonl.out", "job/run/.meta.jsonl.out", "job/.hidden/meta.jsonl.out"]
    bucket = s3_server.new_bucket("hid")
    put_keys(s3_server, bucket, [f"p/{relative}" for relative in tree])
    write_local_tree(tmp_path, tree)
    assert local_matches(tmp_path, "*/*/*.jsonl.out") == ["job/run/meta.jsonl.out"]
    assert s3_matches(S3Store(s3_server.resource()), bucket, "p", "*/*/*.jsonl.out") == ["job/run/meta.jsonl.out"]


def test_an_s3_glob_matching_nothing_is_an_empty_list(s3_server):
    bucket = s3_server.new_bucket("empty")
    assert S3Store(s3_server.resource()).glob(f"s3://{bucket}/nothing/*/*.jsonl.out") == []



def test_counting_an_s3_parquet_files_rows_fetches_its_footer_not_the_object(s3_server, tmp_path):
    bucket = s3_server.new_bucket("footer")
    uri = f"s3://{bucket}/lake/trainset/v1/model_a.parquet"
    frame = pl.DataFrame({"text": [uuid.uuid4().hex * 8 for _ in range(100_000)]})  # ~2 MB after compression
    store = S3Store(s3_server.resource())
    store.write_parquet(frame, uri)
    size = store.state(uri).size
    with s3_server.recording() as requests:
        assert store.parquet_rows(uri) == 100_000
    reads = [request for request in requests if request["method"] == "GET"]
    assert reads and all("Range" in request["headers"] for request in reads)
    fetched = sum(int(end) - int(start) + 1 for request in reads for start, end in [request["headers"]["Range"].removeprefix("bytes=").split("-")])
    assert fetched < size / 10, (fetched, size)


def test_counting_rows_of_a_missing_s3_object_is_a_storage_error_naming_it(s3_server):
    uri = f"s3://{s3_server.new_bucket('footer')}/lake/none.parquet"
    with pytest.raises(StorageError, match=f"^{uri}: "):
        S3Store(s3_server.resource()).parquet_rows(uri)


def test_the_modification_time_is_s3_last_modified_or_the_local_mtime(s3_server, tmp_path):
    """What decides which re-judged copy wins (core.batch_files.job_order): when each file was written."""
    bucket = s3_server.new_bucket("when")
    put_keys(s3_server, bucket, ["out/job/part.jsonl.out"])
    last_modified = s3_server.client().head_object(Bucket=bucket, Key="out/job/part.jsonl.out")["LastModified"]
    assert S3Store(s3_server.resource()).modified(f"s3://{bucket}/out/job/part.jsonl.out") == last_modified.timestamp()
    local = tmp_path / "part.jsonl.out"
    local.write_bytes(b"")
    os.utime(local, (1_700_000_000, 1_700_000_000))
    assert LocalStore().modified(str(local)) == 1_700_000_000
    with pytest.raises(StorageError, match="missing"):
        S3Store(s3_server.resource()).modified(f"s3://{bucket}/out/job/missing.jsonl.out")

# ---- interrupted writes -------------------------------------------------------------------------


CHILD_PRELUDE = """
import sys, types
# The child exercises LocalStore / S3Store only. Importing Dagster would cost seconds of startup per
# child, so a minimal dagster_aws.s3 stands in: S3Store needs only an object with get_client().
aws, aws_s3 = types.ModuleType("dagster_aws"), types.ModuleType("dagster_aws.s3")

class S3Resource:
    def __init__(self, endpoint_url=None, region_name=None):
        self.endpoint_url, self.region_name = endpoint_url, region_name

    def get_client(self):
        import boto3
        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name=self.region_name)

aws_s3.S3Resource, aws.s3 = S3Resource, aws_s3
sys.modules.update({"dagster_aws": aws, "dagster_aws.s3": aws_s3})
"""


@pytest.fixture
def start():
    """Start a child Python running `script`; any child still alive at the end of the test is killed."""
    children: list[subprocess.Popen] = []

    def start(script: str, *args: str) -> subprocess.Popen:
        env = {**os.environ, "PYTHONPATH": PACKAGE_ROOT}
        child = subprocess.Popen([sys.executable, "-c", CHILD_PRELUDE + script, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        children.append(child)
        return child

    yield start
    for child in children:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=30)
        child.stdout.close()
        child.stderr.close()


def _pump(stream, lines: queue.Queue) -> None:
    try:
        for line in stream:
            lines.put(line.strip())
    except ValueError:  # the stream was closed at teardown
        pass


def wait_for(process: subprocess.Popen, wanted: set[str], timeout: float = 60) -> None:
    """Read the child's stdout until every line in `wanted` was printed (or fail, showing its stderr)."""
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_pump, args=(process.stdout, lines), daemon=True).start()
    deadline = time.monotonic() + timeout
    remaining = set(wanted)
    while remaining:
        try:
            remaining.discard(lines.get(timeout=max(0.0, deadline - time.monotonic())))
        except queue.Empty:
            process.kill()
            pytest.fail(f"child never printed {sorted(remaining)}; stderr:\n{process.stderr.read()}")


def kill(process: subprocess.Popen) -> None:
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL


BIG_FRAME = """
import numpy as np, polars as pl
# ~30 MB of incompressible int64s: a parquet file above boto3's 8 MB multipart threshold
frame = pl.DataFrame({"x": np.random.default_rng(0).integers(0, 2**62, 30_000_000 // 8)})
"""

S3_UPLOAD_KILLED = BIG_FRAME + """
import threading
from tqc_dagster.s3_store import S3Store
url, *uris = sys.argv[1:]

def hold(uri):
    def after_part(**_):
        print(f"part {uri}", flush=True)
        threading.Event().wait()  # the upload never completes: killed here
    return after_part

for region, uri in zip(("us-east-1", "us-east-2"), uris):  # distinct settings: a client (and a blocking hook) of its own
    store = S3Store(S3Resource(endpoint_url=url, region_name=region))
    store.client.meta.events.register("after-call.s3.UploadPart", hold(uri))
    threading.Thread(target=store.write_parquet, args=(frame, uri), daemon=True).start()
threading.Event().wait()
"""


def test_a_killed_multipart_upload_leaves_no_object_and_the_old_version_intact(s3_server, start):
    bucket = s3_server.new_bucket("kill")
    store = S3Store(s3_server.resource())
    fresh, existing = f"s3://{bucket}/lake/raw_judgments/v1/model_a.parquet", f"s3://{bucket}/lake/raw_judgments/v1/model_b.parquet"
    old = pl.DataFrame({"record_id": ["r1", "r2"], "value": [1, 2]})
    store.write_parquet(old, existing)
    old_state = store.state(existing)

    child = start(S3_UPLOAD_KILLED, s3_server.url, fresh, existing)
    wait_for(child, {f"part {fresh}", f"part {existing}"})
    in_progress = {upload["Key"] for upload in s3_server.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])}
    assert in_progress == {"lake/raw_judgments/v1/model_a.parquet", "lake/raw_judgments/v1/model_b.parquet"}  # killed mid-upload
    kill(child)

    assert not store.exists(fresh)
    assert store.glob(f"s3://{bucket}/lake/raw_judgments/v1/*.parquet") == [existing]
    assert store.state(existing) == old_state
    assert_frame_equal(store.read_parquet(existing), old)


LOCAL_WRITE_KILLED = BIG_FRAME + """
import os, threading, time
from tqc_dagster.stores import LocalStore

def never_renamed(source, target):
    print(f"renaming {target}", flush=True)
    time.sleep(3600)

os.replace = never_renamed  # LocalStore renames the finished temporary into place: blocked, so killed before it
writers = [threading.Thread(target=LocalStore().write_parquet, args=(frame, uri)) for uri in sys.argv[1:]]
print("writing", flush=True)
for writer in writers:
    writer.start()
for writer in writers:
    writer.join()
"""


def temporaries(target: Path) -> list[Path]:
    return list(target.parent.glob(f"{target.name}.tmp-*"))


@pytest.mark.parametrize("moment", ["while writing", "before the rename"])
def test_a_killed_local_write_leaves_the_old_file_and_nothing_partial_under_the_final_name(tmp_path, start, moment):
    """One child writes two partitions, one over an earlier file and one new, and is killed."""
    folder = tmp_path / "lake" / "trainset" / "v1"
    existing, new = folder / "model_a.parquet", folder / "model_b.parquet"
    old = pl.DataFrame({"record_id": ["r1"], "value": [1]})
    LocalStore().write_parquet(old, str(existing))
    old_bytes = existing.read_bytes()
    child = start(LOCAL_WRITE_KILLED, str(existing), str(new))
    if moment == "while writing":
        wait_for(child, {"writing"})
        deadline = time.monotonic() + 60
        while not (temporaries(existing) and temporaries(new)) and time.monotonic() < deadline:
            time.sleep(0.001)
        assert temporaries(existing) and temporaries(new), "the temporaries never appeared"
    else:
        wait_for(child, {f"renaming {existing}", f"renaming {new}"})
    kill(child)
    assert existing.read_bytes() == old_bytes
    assert_frame_equal(pl.read_parquet(existing), old)
    assert not new.exists()
    # a killed process cannot clean up: its temporaries may stay beside the targets, never under their names
    assert {path.name for path in folder.iterdir()} - {existing.name} <= {path.name for path in temporaries(existing) + temporaries(new)}
    # the next write of each target (the rerun) removes what the killed one left beside it
    for target in (existing, new):
        LocalStore().write_parquet(old, str(target))
    assert sorted(path.name for path in folder.iterdir()) == [existing.name, new.name]


def finished_folder(root: Path, files: dict[str, str]) -> Path:
    def write(staging: Path) -> None:
        for name, text in files.items():
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            (staging / name).write_text(text)

    LocalStore().publish_folder(str(root), write)
    return root


def failing_write(staging: Path) -> None:
    (staging / "sft").mkdir()
    (staging / "sft" / "train.jsonl").write_text('{"half": ')
    raise RuntimeError("interrupted while writing the export")


def test_an_interrupted_local_publish_leaves_no_marker_for_a_new_folder(tmp_path):
    destination = tmp_path / "exports" / "v1" / "simple"
    with pytest.raises(RuntimeError, match="interrupted"):
        LocalStore().publish_folder(str(destination), failing_write)
    assert not destination.exists()
    assert list(destination.parent.iterdir()) == []  # no staging folder left either


def test_an_interrupted_local_publish_leaves_a_finished_folder_finished(tmp_path):
    destination = finished_folder(tmp_path / "exports" / "v1" / "simple", {"sft/train.jsonl": "old\n", "README.md": "# old\n"})
    before = {p.relative_to(destination).as_posix(): p.read_bytes() for p in destination.rglob("*") if p.is_file()}
    assert SUCCESS_MARKER in before
    with pytest.raises(RuntimeError, match="interrupted"):
        LocalStore().publish_folder(str(destination), failing_write)
    after = {p.relative_to(destination).as_posix(): p.read_bytes() for p in destination.rglob("*") if p.is_file()}
    assert after == before
    assert [p.name for p in destination.parent.iterdir()] == ["simple"]


LOCAL_PUBLISH_KILLED = """
import os, time
from tqc_dagster.stores import LocalStore
destination, blocked_call = sys.argv[1], int(sys.argv[2])
real_replace, calls = os.replace, []

def replace(source, target):
    calls.append(target)
    if len(calls) == blocked_call:
        print("renaming", flush=True)
        time.sleep(3600)
    return real_replace(source, target)

os.replace = replace

def write(staging):
    (staging / "sft").mkdir()
    (staging / "sft" / "train.jsonl").write_text("new\\n")

LocalStore().publish_folder(destination, write)
"""


@pytest.mark.parametrize(
    "blocked_call",
    [
        pytest.param(1, id="killed before the old folder is moved aside"),
        pytest.param(2, id="killed between the two renames"),
    ],
)
def test_a_killed_local_publish_never_shows_a_half_written_folder_and_the_next_publish_recovers(tmp_path, start, blocked_call):
    destination = finished_folder(tmp_path / "exports" / "v1" / "simple", {"sft/train.jsonl": "old\n"})
    child = start(LOCAL_PUBLISH_KILLED, str(destination), str(blocked_call))
    wait_for(child, {"renaming"})
    kill(child)
    if blocked_call == 1:
        assert (destination / SUCCESS_MARKER).exists() and (destination / "sft" / "train.jsonl").read_text() == "old\n"
    else:  # between the renames the folder is absent (never half-written); the old one waits aside
        assert not destination.exists() and list(destination.parent.glob(".simple.old-*"))
    LocalStore().publish_folder(str(destination), lambda staging: None)
    assert (destination / SUCCESS_MARKER).exists() and not list(destination.parent.glob(".simple.*"))


def test_an_interrupted_s3_publish_leaves_no_marker_and_a_finished_folder_finished(s3_server):
    bucket = s3_server.new_bucket("pub")
    store = S3Store(s3_server.resource())
    new, existing = f"s3://{bucket}/exports/v1/simple", f"s3://{bucket}/exports/v1/complex"
    store.publish_folder(existing, lambda staging: (staging / "train.jsonl").write_text("old\n"))
    before = {key: s3_server.read(bucket, key) for key in s3_server.keys(bucket, "exports/v1/complex/")}
    assert "exports/v1/complex/_SUCCESS" in before

    for uri in (new, existing):
        with pytest.raises(RuntimeError, match="interrupted"):
            store.publish_folder(uri, failing_write)
    assert s3_server.keys(bucket, "exports/v1/simple/") == []
    assert {key: s3_server.read(bucket, key) for key in s3_server.keys(bucket, "exports/v1/complex/")} == before


def test_an_s3_publish_failing_mid_upload_leaves_the_folder_unfinished(s3_server):
    """The marker is removed before the first file is replaced: a half-replaced folder is never marked finished."""
    bucket = s3_server.new_bucket("pub")
    store = S3Store(s3_server.resource())
    uri = f"s3://{bucket}/exports/v1/simple"
    store.publish_folder(uri, lambda staging: [(staging / name).write_text("old\n") for name in ("a.jsonl", "b.jsonl")])
    assert store.exists(f"{uri}/{SUCCESS_MARKER}")

    uploads = []

    def fail_second_upload(**_):
        uploads.append(1)
        if len(uploads) == 2:
            raise ConnectionError("connection lost mid-publish")

    store.client.meta.events.register("before-call.s3.PutObject", fail_second_upload)
    with pytest.raises(Exception, match="connection lost"):
        store.publish_folder(uri, lambda staging: [(staging / name).write_text("new\n") for name in ("a.jsonl", "b.jsonl")])
    assert not store.exists(f"{uri}/{SUCCESS_MARKER}")
    assert store.read_text(f"{uri}/a.jsonl") == "new\n" and store.read_text(f"{uri}/b.jsonl") == "old\n"


def test_an_s3_publish_removes_stale_files_and_marks_the_folder_last(s3_server):
    bucket = s3_server.new_bucket("pub")
    store = S3Store(s3_server.resource())
    uri = f"s3://{bucket}/exports/v1/simple"
    store.publish_folder(uri, lambda staging: [(staging / name).write_text("old\n") for name in ("a.jsonl", "stale.jsonl")])
    calls = []
    store.client.meta.events.register("before-parameter-build.s3.*", lambda model, params, **_: calls.append((model.name, params.get("Key"))))
    store.publish_folder(uri, lambda staging: (staging / "a.jsonl").write_text("new\n"))
    assert s3_server.keys(bucket, "exports/v1/simple/") == ["exports/v1/simple/_SUCCESS", "exports/v1/simple/a.jsonl"]
    writes = [call for call in calls if call[0] in ("PutObject", "DeleteObject")]
    assert writes[0] == ("DeleteObject", "exports/v1/simple/_SUCCESS") and writes[-1] == ("PutObject", "exports/v1/simple/_SUCCESS")


# ---- clear errors -------------------------------------------------------------------------------


def operations(bucket: str) -> dict:
    uri = f"s3://{bucket}/lake/raw_judgments/v1/model_a.parquet"
    frame = pl.DataFrame({"a": [1]})
    return {
        "glob": (f"s3://{bucket}/in/*/*/*.jsonl.out", lambda store, u: store.glob(u)),
        "read_text": (uri, lambda store, u: store.read_text(u)),
        "state": (uri, lambda store, u: store.state(u)),
        "exists": (uri, lambda store, u: store.exists(u)),
        "read_parquet": (uri, lambda store, u: store.read_parquet(u)),
        "write_parquet": (uri, lambda store, u: store.write_parquet(frame, u)),
        "publish_folder": (f"s3://{bucket}/exports/v1/simple", lambda store, u: store.publish_folder(u, lambda staging: (staging / "a.txt").write_text("a"))),
    }


@pytest.mark.parametrize(
    "operation",
    [
        "glob",
        "read_text",
        "publish_folder",
        "state",
        "exists",
        "read_parquet",
        "write_parquet",
    ],
)
def test_a_missing_bucket_is_a_storage_error_naming_the_uri_and_the_bucket(s3_server, operation):
    bucket = f"no-such-bucket-{uuid.uuid4().hex[:8]}"
    uri, call = operations(bucket)[operation]
    with pytest.raises(StorageError) as raised:
        call(S3Store(s3_server.resource()), uri)
    assert str(raised.value).startswith(f"{uri}: ")
    assert f"the S3 bucket '{bucket}' does not exist" in str(raised.value)


@pytest.fixture(scope="module")
def guarded_bucket(s3_server):
    """A bucket with one object, and the keys of IAM users: denied everything, allowed nothing, read-only."""
    bucket = s3_server.new_bucket("guarded")
    s3_server.client().put_object(Bucket=bucket, Key="lake/raw_judgments/v1/model_a.parquet", Body=b"PAR1")
    s3_server.client().put_object(Bucket=bucket, Key="in/job/run/a.jsonl.out", Body=b"{}\n")
    users = {
        "denied": s3_server.iam_user("denied-all", [{"Effect": "Deny", "Action": "s3:*", "Resource": "*"}]),
        "no policy": s3_server.iam_user("allowed-nothing", [{"Effect": "Allow", "Action": "sqs:ListQueues", "Resource": "*"}]),
        "read-only": s3_server.iam_user("read-only", [{"Effect": "Allow", "Action": ["s3:Get*", "s3:List*"], "Resource": "*"}]),
        "unknown key": ("AKIAUNKNOWNUNKNOWN00", "not-a-secret"),
    }
    return bucket, users


@pytest.mark.parametrize("user", ["denied", "no policy", "unknown key"])
@pytest.mark.parametrize(
    "operation",
    [
        "glob",
        "read_text",
        "state",
        "exists",
        "read_parquet",
        "publish_folder",
        "write_parquet",
    ],
)
def test_denied_access_is_a_storage_error_naming_the_uri(s3_server, guarded_bucket, monkeypatch, user, operation):
    """moto enforces IAM once INITIAL_NO_AUTH_ACTION_COUNT is reached (here: switched to 0 for the test)."""
    bucket, users = guarded_bucket
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", users[user][0])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", users[user][1])
    uri, call = operations(bucket)[operation]
    with s3_server.enforcing_iam():
        with pytest.raises(StorageError) as raised:
            call(S3Store(s3_server.resource()), uri)
    assert str(raised.value).startswith(f"{uri}: access denied (")
    assert "check the credentials and the bucket policy" in str(raised.value)


@pytest.mark.parametrize("operation", ["publish_folder", "write_parquet"])
def test_a_read_only_user_can_read_but_a_write_is_a_storage_error_naming_the_uri(s3_server, guarded_bucket, monkeypatch, operation):
    bucket, users = guarded_bucket
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", users["read-only"][0])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", users["read-only"][1])
    uri, call = operations(bucket)[operation]
    with s3_server.enforcing_iam():
        store = S3Store(s3_server.resource())
        assert store.glob(f"s3://{bucket}/in/*/*/*.jsonl.out") == [f"s3://{bucket}/in/job/run/a.jsonl.out"]
        assert store.read_text(f"s3://{bucket}/in/job/run/a.jsonl.out") == "{}\n"
        with pytest.raises(StorageError) as raised:
            call(store, uri)
    assert str(raised.value).startswith(f"{uri}: access denied (AccessDenied)")


def test_iam_enforcement_is_switched_off_again(s3_server, guarded_bucket):
    """The dummy keys work again after the denied-access tests (moto's auth setting is process-wide)."""
    bucket, _ = guarded_bucket
    assert S3Store(s3_server.resource()).exists(f"s3://{bucket}/lake/raw_judgments/v1/model_a.parquet")
