"""What correct ingest means for any input, as assertions: the oracle the ingest fuzz tests share.

`check_ingest(files)` runs the core ingest (read_records, judgments_for_model, process) and
asserts: nothing raises; every non-blank line is one raw row per model; the accounting identity
holds; every row carries the record id the standard library reads from its own line.
"""

from __future__ import annotations

import json
import re

import polars as pl

from tqc_dagster.core import batch_outputs as bo
from tqc_dagster.core import judgments as jd

MODELS = {"model_a": 1, "model_b": 2}


def _non_blank(contents: dict[str, bytes]) -> dict[tuple[str, int], bytes]:
    """Non-blank lines by (file, number), split on b"\\n" after a leading UTF-8 BOM, as the reader and run_cases count them."""
    lines = {}
    for path, data in contents.items():
        data = data[3:] if data.startswith(b"\xef\xbb\xbf") else data
        parts = data.split(b"\n")
        parts = parts[:-1] if data.endswith(b"\n") or not data else parts
        lines |= {(path, n): part for n, part in enumerate(parts, start=1) if part.strip()}
    return lines


def oracle_record_id(line: bytes) -> str | None | bool:
    """The recordId the standard library reads from a line; False when it does not read the line as one object."""
    line = line[3:] if line.startswith(b"\xef\xbb\xbf") else line
    try:
        value = json.loads(line.decode("utf-8", "replace"), strict=False)
    except (ValueError, RecursionError):
        return False
    if not isinstance(value, dict):
        return False
    record_id = value.get("recordId")
    if not isinstance(record_id, str) or not record_id.strip():
        return None
    return re.sub("[\ud800-\udfff]", "\ufffd", record_id)


def check_ingest(contents: dict[str, bytes]) -> None:
    expected = _non_blank(contents)
    try:
        records = bo.read_records(list(contents), list(MODELS.values())).records
        results = {}
        for model, translation_id in MODELS.items():
            raw = bo.judgments_for_model(records, "v1", model, translation_id)
            results[model] = (raw, *jd.process(raw, jd.Thresholds()))
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # a polars panic is a BaseException
        raise AssertionError(f"ingest raised {type(exc).__name__}: {exc}") from exc
    ids = dict(zip(records.select("source_file", "line_number").rows(), records.get_column("record_id"), strict=True))
    for key, line in expected.items():
        oracle = oracle_record_id(line)
        if oracle is not False:
            assert ids[key] == oracle, f"line {key}: record_id {ids[key]!r}, the line says {oracle!r}"
    for model, (raw, samples, quarantined, accounting) in results.items():
        seen = raw.select("source_file", "line_number").rows()
        assert len(seen) == len(set(seen)) and set(seen) == set(expected), f"{model}: raw rows are not the non-blank lines"
        assert accounting.lines == len(expected) and accounting.balanced, accounting
        assert (samples.height, quarantined.height) == (accounting.valid, accounting.quarantined)
        assert set(quarantined.get_column("reason")) <= set(jd.QUARANTINE_REASONS)
        assert samples.get_column("record_id").is_unique().all()
        assert samples.get_column("scores").list.len().eq(7).all() and samples.get_column("thought").str.strip_chars().ne("").all()
        texts = samples.select(pl.concat_str(jd.TEXT_COLUMNS, separator=" ").str.contains(jd.CORRUPT_TEXT).any()).item()
        assert not texts, f"{model}: a sample holds corrupt text"
