"""Issue 13, kinds 5-7: what a glob matches, encodings and line ends at file level, which job ran last;
and reading a file in chunks, in this process or in worker processes, gives the same rows."""

from __future__ import annotations

import bz2
import gzip
import logging
import lzma
import os
import zipfile
from contextlib import contextmanager

import polars as pl
import pytest

from tqc_dagster.core import batch_files as bf
from tqc_dagster.core import batch_outputs as bo
from tqc_dagster.core import judgments as jd
from tqc_dagster_tests import records as rec

MODELS = {"model_a": 1, "model_b": 2}
LINES = [rec.line(rec.judge_record(f"meta_All_Beauty_0_{i}", source=f"Title {i}")) for i in range(6)]
BODY = ("\n".join(LINES[:3]) + "\n\n  \n" + "\n".join(LINES[3:]) + "\n").encode()


def read(files: list[str], **kwargs) -> bo.ReadResult:
    return bo.read_records(files, list(MODELS.values()), **kwargs)


def rows(result: bo.ReadResult) -> list[tuple]:
    return result.records.drop("source_file").rows()


@pytest.fixture
def plain(tmp_path) -> str:
    path = tmp_path / "job" / "part.jsonl.out"
    path.parent.mkdir(parents=True)
    path.write_bytes(BODY)
    return str(path)


# --- kind 5: input discovery ----------------------------------------------------------------------------


def test_a_directory_named_like_an_output_file_is_reported_not_read(tmp_path, plain):
    folder = tmp_path / "job" / "nested.jsonl.out"
    folder.mkdir()
    result = read([plain, str(folder)])
    assert result.skipped == {str(folder): "a directory, not a batch output file"}
    assert rows(result) == rows(read([plain]))


def test_a_fifo_is_reported_not_read(tmp_path, plain):
    fifo = tmp_path / "job" / "pipe.jsonl.out"
    os.mkfifo(fifo)
    assert read([plain, str(fifo)]).skipped == {str(fifo): "not a regular file"}


def test_a_zip_archive_is_reported_not_read(tmp_path, plain):
    archive = tmp_path / "job" / "part.jsonl.out.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("part.jsonl.out", BODY)
    result = read([plain, str(archive)])
    assert "zip archive" in result.skipped[str(archive)]
    assert result.records.get_column("source_file").unique().to_list() == [plain]


@pytest.mark.parametrize("opener", [gzip.open, bz2.open, lzma.open], ids=["gzip", "bzip2", "xz"])
def test_a_compressed_file_is_read_on_purpose_as_lines(tmp_path, plain, opener):
    packed = tmp_path / "job2" / "part.jsonl.out.gz"
    packed.parent.mkdir()
    with opener(packed, "wb") as handle:
        handle.write(BODY)
    result = read([str(packed)])
    assert rows(result) == rows(read([plain])) and result.blank_lines == 2
    raw = bo.judgments_for_model(result.records, "v1", "model_a", 1)
    assert jd.process(raw, jd.Thresholds())[2] == jd.Accounting(lines=6, valid=6, quarantined=0, duplicates=0)


# --- kind 6: encoding marks and line ends at file level --------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"\xef\xbb\xbf" + BODY,
        BODY.replace(b"\n", b"\r\n"),
        b"\xef\xbb\xbf" + BODY.replace(b"\n", b"\r\n"),
        BODY.replace(b"\n" + LINES[4].encode(), b"\n\xef\xbb\xbf" + LINES[4].encode()),
        BODY.rstrip(b"\n"),
        b"\xff\xfe" + BODY.decode().encode("utf-16-le"),
        b"\xfe\xff" + BODY.replace(b"\n", b"\r\n").decode().encode("utf-16-be"),
    ],
    ids=["utf8-bom", "crlf", "bom-and-crlf", "bom-inside-joined-files", "no-final-newline", "utf16-le", "utf16-be-crlf"],
)
def test_every_line_of_a_file_reads_the_same_whatever_its_encoding_marks_and_line_ends(tmp_path, plain, body):
    other = tmp_path / "other" / "part.jsonl.out"
    other.parent.mkdir()
    other.write_bytes(body)
    result = read([str(other)])
    assert result.records.get_column("parse_error").null_count() == 6
    assert rows(result) == rows(read([plain]))


def test_junk_that_merely_starts_like_a_utf16_mark_is_read_as_bytes(tmp_path):
    path = tmp_path / "junk.jsonl.out"
    path.write_bytes(b"\xfe\xff\n\xff\n" + LINES[0].encode())
    records = read([str(path)]).records
    assert records.select("line_number", "parse_error").rows() == [(1, bo.UNREADABLE_LINE), (2, bo.UNREADABLE_LINE), (3, None)]


# --- chunks, in this process and in workers --------------------------------------------------------------


@pytest.mark.parametrize("chunk_bytes", [1, 500, 4096, 1 << 22])
def test_a_file_read_in_chunks_gives_the_same_rows(tmp_path, monkeypatch, plain, chunk_bytes):
    whole = rows(read([plain]))
    monkeypatch.setattr(bf, "CHUNK_BYTES", chunk_bytes)
    monkeypatch.setattr(bf, "SLICE_LINES", 2)
    assert len(bf.chunks(plain)) > 1 or chunk_bytes > len(BODY)
    assert rows(read([plain])) == whole


def test_worker_processes_give_the_same_rows(tmp_path, monkeypatch, plain):
    big = tmp_path / "job9" / "big.jsonl.out"
    big.parent.mkdir()
    big.write_bytes(BODY * 40 + b"garbage\n" + BODY)
    here = rows(read([str(big), plain]))
    monkeypatch.setattr(bo, "POOL_MIN_BYTES", 1)
    monkeypatch.setattr(bf, "CHUNK_BYTES", 20_000)
    monkeypatch.setattr(bo, "WORKERS", 2)
    assert len(bf.chunks(str(big))) > 4
    assert rows(read([str(big), plain])) == here


def test_when_workers_cannot_start_the_file_is_parsed_here(tmp_path, monkeypatch, plain):
    def no_processes(method):
        raise OSError("no processes here")

    whole = rows(read([plain]))
    monkeypatch.setattr(bo, "POOL_MIN_BYTES", 1)
    monkeypatch.setattr(bf, "CHUNK_BYTES", 500)
    monkeypatch.setattr(bo, "WORKERS", 2)
    monkeypatch.setattr(bo.multiprocessing, "get_context", no_processes)
    assert rows(read([plain])) == whole


# --- kind 7: which copy wins follows when the job ran -----------------------------------------------------

DUP = "meta_All_Beauty_1_2"


def judged(scores_a: list[float]) -> str:
    return rec.line(rec.judge_record(DUP, entries=[rec.entry(1, "t", scores_a), rec.entry(2, "t", rec.SCORES_B)]))


def write(path, line: str, mtime: float | None = None) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(line + "\n")
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return str(path)


def winner(files: list[str], **kwargs) -> float:
    raw = bo.judgments_for_model(read(files, **kwargs).records, "v1", "model_a", 1)
    samples, _, accounting = jd.process(raw, jd.Thresholds())
    assert accounting.duplicates == len(files) - 1
    return samples.get_column("min_score").item()


def test_the_rerun_wins_by_modification_time_even_when_its_random_job_id_sorts_first(tmp_path):
    original = write(tmp_path / "zq81job" / "part.jsonl.out", judged([4.0] + [5.0] * 6), mtime=1_700_000_000)
    rerun = write(tmp_path / "a03kjob" / "part.jsonl.out", judged([1.0] + [5.0] * 6), mtime=1_700_090_000)
    assert sorted([original, rerun]) == [rerun, original]
    assert winner([original, rerun]) == winner([rerun, original]) == 1.0


def test_a_time_in_the_path_beats_the_modification_time(tmp_path):
    """Copies (cp, aws s3 sync) reset modification times; a job time written in the path survives them."""
    rerun = write(tmp_path / "a03kjob" / "20250201T135802Z" / "part.jsonl.out", judged([1.0] + [5.0] * 6), mtime=1_000)
    original = write(tmp_path / "zq81job" / "20250201T051817Z" / "part.jsonl.out", judged([4.0] + [5.0] * 6), mtime=2_000)
    assert winner([original, rerun]) == 1.0


def test_the_store_time_of_remote_files_is_asked_for(tmp_path):
    local = {
        "s3://bucket/out/zz-old/part.jsonl.out": write(tmp_path / "old.jsonl.out", judged([4.0] + [5.0] * 6)),
        "s3://bucket/out/aa-new/part.jsonl.out": write(tmp_path / "new.jsonl.out", judged([1.0] + [5.0] * 6)),
    }
    times = {"s3://bucket/out/zz-old/part.jsonl.out": 100.0, "s3://bucket/out/aa-new/part.jsonl.out": 200.0}

    @contextmanager
    def local_copy(uri):
        yield local[uri]

    assert winner(list(local), local_copy=local_copy, modified=times.get) == 1.0
    assert bf.job_order(list(local)) == sorted(local)  # no time known: by name


@pytest.mark.parametrize(
    ("uri", "seconds"),
    [
        ("s3://b/c35-v2/0gykcfv65eu1/20250201T051817Z/part.jsonl.out", 1738387097.0),
        ("/data/run-2025-02-01/part.jsonl.out", 1738368000.0),
        ("/data/2024-12-31_23-59-59/part.jsonl.out", 1735689599.0),
        ("/data/2024-01-01/2025-02-01T05:18:17/part.jsonl.out", 1738387097.0),
        ("/data/job-2024-13-45/part.jsonl.out", None),
        ("/data/0gykcfv65eu1/meta_All_Beauty_20240101.jsonl.out", None),
        ("/data/job-2024-01/part.jsonl.out", None),
    ],
)
def test_path_time(uri, seconds):
    assert bf.path_time(uri) == seconds


def test_rows_come_in_job_order(tmp_path):
    newer = write(tmp_path / "b" / "part.jsonl.out", LINES[1], mtime=300)
    older = write(tmp_path / "a" / "part.jsonl.out", LINES[0], mtime=100)
    assert read([newer, older]).records.get_column("source_file").to_list() == [older, newer]
    assert pl.Series(bf.job_order([newer, older])).to_list() == [older, newer]


def test_the_ingest_asset_names_what_it_did_not_read(tmp_path):
    """Through Dagster: a directory matched by the input glob is in the run's log and the asset's metadata."""
    import dagster as dg

    from tqc_dagster.config import load_config
    from tqc_dagster.definitions import build_definitions
    from tqc_dagster_tests.conftest import write_config

    demo = tmp_path / "demo"
    job = demo / "raw" / "translation_eval_cot" / "c35-v2" / "job1" / "20250201T051817Z"
    job.mkdir(parents=True)
    (job / "part.jsonl.out").write_bytes(BODY)
    (job / "nested.jsonl.out").mkdir()
    defs = build_definitions(load_config(write_config(tmp_path / "project", demo)))
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [defs.get_assets_def("judge_records")], partition_key="v1", instance=instance,
            resources=defs.resources, selection=["judge_records"],
        )
        warnings = [event.message for event in instance.all_logs(result.run_id) if event.level == logging.WARNING]
    metadata = result.asset_materializations_for_node("judge_records")[0].metadata
    assert metadata["not_read"].value == {str(job / "nested.jsonl.out"): "a directory, not a batch output file"}
    assert metadata["dagster/row_count"].value == 6
    assert any("judge_versions.v1.input matches" in message and "nested.jsonl.out" in message for message in warnings)
