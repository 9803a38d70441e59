"""Bedrock batch-inference outputs (`.jsonl.out`) as polars frames: `judge_records` and `raw_judgments`.

Each line is decoded on its own (`batch_lines`), its judge array read (`judge_array`), the
prompt's fields cut out by their delimiters (titles are not XML-escaped, so an XML parser would
reject real records), and the values of many lines made into one frame column-wise. Large files
are parsed by worker processes, a byte range each (`batch_files.chunks`). A line that is not one
JSON object keeps `parse_error` `unreadable_line` and the `recordId` visible in its text.
"""

from __future__ import annotations

import functools
import logging
import multiprocessing
import os
import re
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import AbstractContextManager, ExitStack, nullcontext
from dataclasses import dataclass, field

import polars as pl

from tqc_dagster.core.batch_files import Chunk, chunk_lines, chunks, input_problem, job_order, local_mtime
from tqc_dagster.core.batch_lines import BOM, LENIENT_JSON, decode_line, normal_newlines, valid_unicode
from tqc_dagster.core.judge_array import Entry, judge_array

log = logging.getLogger(__name__)

# parse_error codes of a line (the judge array's and its entries' are in `judge_array`).
UNREADABLE_LINE = "unreadable_line"  # not one JSON object
NO_MODEL_OUTPUT = "no_model_output"
NO_ENTRY_FOR_ID = "no_entry_for_id"
MISSING_FROM_OUTPUT = "missing_from_output"  # asked in a batch job (judge_requests), in no output file

EXCERPT_CHARS = 200

JUDGE_ENTRY_DTYPE = pl.Struct({"id": pl.String, "thought": pl.String, "scores": pl.List(pl.String), "fault": pl.String})
JUDGE_ARRAY_DTYPE = pl.List(JUDGE_ENTRY_DTYPE)
TRANSLATIONS_DTYPE = pl.List(pl.Struct({"id": pl.String, "text": pl.String}))
RECORD_SCHEMA = {
    "source_file": pl.String, "line_number": pl.Int64, "record_id": pl.String, "target_lang": pl.String,
    "source": pl.String, "translations": TRANSLATIONS_DTYPE, "judge_entries": JUDGE_ARRAY_DTYPE,
    "stop_reason": pl.String, "error": pl.String, "input_tokens": pl.Int64, "output_tokens": pl.Int64,
    "parse_error": pl.String, "excerpt": pl.String,
}
RECORD_COLUMNS = list(RECORD_SCHEMA)


# --- the prompt's fields ----------------------------------------------------------------------------

_TARGET_LANG = re.compile(r'<translations\s+target_lang="([^"]*)"')
# Unicode White_Space, what polars' strip_chars removes (Python's str.strip would also take \x1c-\x1f).
_WHITESPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"


def prompt_fields(prompt: str | None, translation_ids: Sequence[int]) -> tuple[str | None, ...]:
    """target_lang, source and each translation id's text, cut out of the prompt by their delimiters.

    target_lang is the attribute of the first `<translations target_lang="...">`. A text is the
    first `<source>...</source>` (or `<translation id="N">...</translation>`) block's content:
    from its first `<content>` to its last `</content>`, stripped of Unicode whitespace, CRs as
    LFs. A missing block or content is None.
    """
    if prompt is None:
        return (None, None) + (None,) * len(translation_ids)
    lang = _TARGET_LANG.search(prompt)
    start = prompt.find("<source>")
    end = prompt.find("</source>", start + 8) if start >= 0 else -1
    fields = [None if lang is None else lang.group(1), None if end < 0 else _content_between(prompt, start + 8, end)]
    for translation_id in translation_ids:
        opening = _translation_opening(translation_id).search(prompt)
        end = prompt.find("</translation>", opening.end()) if opening is not None else -1
        fields.append(None if end < 0 else _content_between(prompt, opening.end(), end))
    return tuple(fields)


@functools.lru_cache(maxsize=64)
def _translation_opening(translation_id: int) -> re.Pattern:
    return re.compile(rf'<translation\s+id="{translation_id}"\s*>')


def _content_between(text: str, start: int, end: int) -> str | None:
    """The text between the first `<content>` and the last `</content>` in text[start:end], stripped, CRs as LFs."""
    opening = text.find("<content>", start, end)
    closing = text.rfind("</content>", opening + 9, end) if opening >= 0 else -1
    return None if closing < 0 else normal_newlines(text[opening + 9 : closing].strip(_WHITESPACE))


# --- lines to a frame ------------------------------------------------------------------------------


def parse_lines(lines: Sequence[bytes], translation_ids: Sequence[int], first_number: int = 1) -> tuple[pl.DataFrame, int]:
    """Judge records of consecutive lines (bytes, no newline): one row per non-blank line, and the blank count.

    Columns: `RECORD_COLUMNS` but `source_file`. `first_number` is the 1-based line number of
    `lines[0]`. A line is blank when it holds only ASCII whitespace.
    """
    columns = _Columns(translation_ids)
    for offset, raw in enumerate(lines):
        if raw and not raw.isspace():
            columns.add(first_number + offset, raw)
    frame = columns.frame()
    return frame.select(RECORD_COLUMNS[1:]), len(lines) - frame.height


class _Columns:
    """The per-line values, one tuple per line, turned into one frame at the end (column-wise)."""

    def __init__(self, translation_ids: Sequence[int]) -> None:
        self.translation_ids = list(translation_ids)
        self.names = (
            "line_number", "record_id", "target_lang", "source", *(f"_text_{i}" for i in self.translation_ids),
            "stop_reason", "error", "input_tokens", "output_tokens", "parse_error", "excerpt",
        )
        self.rows: list[tuple] = []
        self.entries = _EntryColumns()
        self.entry_lists: list[int | None] = []  # per line: which of the entries' lists is its judge array

    def add(self, number: int, raw: bytes) -> None:
        try:
            fields = decode_line(raw)
        except Exception:  # a bug must not stop a judge version: the line is kept as unreadable
            log.exception("line %d could not be read", number)
            fields = None
        if fields is None:
            nothing = (None,) * (len(self.translation_ids) + 6)
            self.rows.append((number, _visible_record_id(raw), *nothing, UNREADABLE_LINE, _line_excerpt(raw)))
            self.entry_lists.append(None)
            return
        record_id, prompt, judge_text, output_text, stop_reason, error, input_tokens, output_tokens = fields
        code, entries = NO_MODEL_OUTPUT, None
        if judge_text is not None:
            entries, code = judge_array(judge_text)
        self.entry_lists.append(None if entries is None else self.entries.add(entries))
        excerpt = error or output_text or _line_excerpt(raw)  # what went wrong, else what the judge wrote, else the line
        self.rows.append(
            (number, record_id) + prompt_fields(prompt, self.translation_ids)
            + (stop_reason, error, input_tokens, output_tokens, code, excerpt[:EXCERPT_CHARS])
        )

    def frame(self) -> pl.DataFrame:
        schema = {name: RECORD_SCHEMA.get(name, pl.String) for name in self.names}
        frame = pl.DataFrame(_as_columns(self.rows, self.names), schema=schema)
        texts = [frame.select(pl.struct(pl.lit(str(i)).alias("id"), pl.col(f"_text_{i}").alias("text"))).to_series() for i in self.translation_ids]
        judge_entries = self.entries.lists().gather(pl.Series(self.entry_lists, dtype=pl.Int64))
        return frame.with_columns(_row_lists(texts).alias("translations"), judge_entries.alias("judge_entries"))


def _as_columns(rows: list[tuple], names: Sequence[str]) -> dict[str, list]:
    """Row tuples as named column lists; a row of another width raises (strict zip)."""
    columns = zip(*rows, strict=True) if rows else [()] * len(names)
    return dict(zip(names, map(list, columns), strict=True))


def _row_lists(items: list[pl.Series]) -> pl.Series:
    """A list column whose row i is [items[0][i], items[1][i], ...] (pl.concat_list is slow on structs)."""
    count, rows = len(items), len(items[0])
    order = pl.int_range(count * rows, dtype=pl.Int64, eager=True)
    flat = pl.concat(items).gather((order % count) * rows + order // count)
    return flat.reshape((rows, count)).cast(pl.List(flat.dtype))


def _cut(flat: pl.Series, lengths: Sequence[int | None]) -> pl.Series:
    """Consecutive pieces of `flat` as lists, one per length (null where a length is None).

    Every value is given to its owner by index and the total is checked, so no value can land
    in another row's list.
    """
    sizes = set(lengths)
    if len(sizes) == 1 and None not in sizes and 0 not in sizes:  # the common case: every list as long
        return flat.reshape((len(lengths), sizes.pop())).cast(pl.List(flat.dtype))
    owners = pl.DataFrame({"_length": lengths}, schema={"_length": pl.Int64}).with_row_index("_owner")
    owner_of_value = owners.select(pl.col("_owner").repeat_by(pl.col("_length").fill_null(0)).explode(empty_as_null=False)).to_series()
    if len(owner_of_value) != len(flat):
        raise AssertionError(f"{len(flat)} values for lists of {len(owner_of_value)}")
    grouped = pl.DataFrame({"_owner": owner_of_value, "value": flat}).group_by("_owner", maintain_order=True).agg("value")
    lists = owners.join(grouped, on="_owner", how="left", maintain_order="left").get_column("value")
    empty = pl.lit([], dtype=pl.List(flat.dtype))
    return owners.with_columns(lists).select(pl.when(pl.col("_length") == 0).then(empty).otherwise("value")).to_series()


class _EntryColumns:
    """Judge entries of many lines, flat: one tuple per entry, and the scores of all entries in two flat lists.

    polars turns nested Python lists into columns slowly; flat columns cut into lists are fast.
    """

    NAMES = ("id", "thought", "fault", "_length", "_numeric")
    SCHEMA = {"id": pl.String, "thought": pl.String, "fault": pl.String, "_length": pl.Int64, "_numeric": pl.Boolean}

    def __init__(self) -> None:
        self.rows: list[tuple] = []
        self.counts: list[int] = []  # entries per judge array
        self.floats: list[float] = []  # the scores of entries whose scores are all numbers
        self.texts: list[str | None] = []  # the scores of the others, as text

    def add(self, entries: Sequence[Entry]) -> int:
        """Keep one judge array's entries; the index of its list."""
        for entry_id, thought, scores, fault, numeric in entries:
            self.rows.append((entry_id, thought, fault, None if scores is None else len(scores), numeric))
            if scores is not None:
                (self.floats if numeric else self.texts).extend(scores)
        self.counts.append(len(entries))
        return len(self.counts) - 1

    def lists(self) -> pl.Series:
        """One list of entry structs per judge array kept."""
        entries = pl.DataFrame(_as_columns(self.rows, self.NAMES), schema=self.SCHEMA)
        scores = _cut(self._flat_scores(entries), [row[3] for row in self.rows])
        structs = entries.with_columns(scores.alias("scores")).select(pl.struct("id", "thought", "scores", "fault")).to_series()
        return _cut(structs, self.counts)

    def _flat_scores(self, entries: pl.DataFrame) -> pl.Series:
        """Every score as text, in entry order (floats printed by polars: 5.0 -> "5.0")."""
        floats = pl.Series(self.floats, dtype=pl.Float64).cast(pl.String)
        if not self.texts:
            return floats
        owners = entries.with_row_index("_entry").select("_numeric", pl.col("_entry").repeat_by(pl.col("_length").fill_null(0)))
        owners = owners.explode("_entry", empty_as_null=False)
        by_owner = pl.concat([
            pl.DataFrame({"_entry": owners.filter("_numeric").get_column("_entry"), "value": floats}),
            pl.DataFrame({"_entry": owners.filter(~pl.col("_numeric")).get_column("_entry"), "value": pl.Series(self.texts, dtype=pl.String)}),
        ])
        return by_owner.sort("_entry", maintain_order=True).get_column("value")


_VISIBLE_RECORD_ID = re.compile(r'"recordId"\s*:\s*"((?:[^"\\\n]|\\.)*)"')


def _visible_record_id(raw: bytes) -> str | None:
    """The first `"recordId": "..."` in an unreadable line's text, so its record can still be named."""
    match = _VISIBLE_RECORD_ID.search(raw.decode("utf-8", "replace"))
    if match is None:
        return None
    try:
        record_id = valid_unicode(LENIENT_JSON.decode(f'"{match.group(1)}"'))
    except (ValueError, RecursionError):
        return None
    return record_id if record_id.strip() else None


def _line_excerpt(raw: bytes) -> str:
    raw = raw[3:] if raw.startswith(BOM) else raw
    raw = raw[:-1] if raw.endswith(b"\r") else raw
    return raw[: EXCERPT_CHARS * 4].decode("utf-8", "replace")[:EXCERPT_CHARS]


def parse_chunk(chunk: Chunk, translation_ids: Sequence[int]) -> tuple[pl.DataFrame, int, int]:
    """Judge records of a chunk (line numbers counted from its start), its line count and its blank lines."""
    parts, lines, blank = [], 0, 0
    for batch in chunk_lines(chunk):
        part, blank_here = parse_lines(batch, translation_ids, first_number=lines + 1)
        parts.append(part)
        lines, blank = lines + len(batch), blank + blank_here
    empty = pl.DataFrame(schema={name: dtype for name, dtype in RECORD_SCHEMA.items() if name != "source_file"})
    return (pl.concat(parts) if parts else empty), lines, blank


# --- every file of a judge version -------------------------------------------------------------------


@dataclass(frozen=True)
class ReadResult:
    """Rows in job order (files oldest job first, then lines); `skipped` names matched paths not read, and why."""

    records: pl.DataFrame
    blank_lines: int
    skipped: dict[str, str] = field(default_factory=dict)


WORKERS = min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
POOL_MIN_BYTES = 1 << 24  # files this large go to worker processes (starting them costs about a second, once)
FILES_IN_FLIGHT = 3  # files whose chunks are queued at once: keeps the workers busy, bounds temporary copies


def read_records(
    files: Sequence[str],
    translation_ids: Sequence[int],
    local_copy: Callable[[str], AbstractContextManager[str]] = nullcontext,
    modified: Callable[[str], float | None] = local_mtime,
) -> ReadResult:
    """Judge records of every file (columns `RECORD_SCHEMA`, one row per non-blank line), in job order (`job_order`).

    `local_copy(uri)` gives a local path for a file (an S3 object is streamed to a temporary
    file); `modified(uri)` the store's modification time (S3 LastModified); `source_file` keeps
    the URI. A directory, special file or archive matched by the glob is skipped and named in
    `skipped`, never read as data. Files of `POOL_MIN_BYTES` or more are parsed by `WORKERS`
    processes, a chunk each, `FILES_IN_FLIGHT` files at a time; smaller ones in this process.
    """
    frames, blank, skipped = [], 0, {}
    with ExitStack() as stack:
        parser, in_flight = _ChunkParser(stack, list(translation_ids)), deque()
        try:
            for uri in job_order(files, modified):
                copy = ExitStack()
                in_flight.append((uri, copy, copy.enter_context(local_copy(uri))))
                problem = input_problem(in_flight[-1][2])
                if problem is not None:
                    skipped[uri] = problem
                    log.warning("not read: %s is %s", uri, problem)
                    in_flight.pop()[1].close()
                    continue
                in_flight[-1] += (parser.submit(in_flight[-1][2]),)
                while len(in_flight) > FILES_IN_FLIGHT:
                    blank += _collect(frames, parser, *in_flight.popleft())
            while in_flight:
                blank += _collect(frames, parser, *in_flight.popleft())
        finally:
            for _, copy, *_ in in_flight:
                copy.close()
    return ReadResult(pl.concat(frames) if frames else pl.DataFrame(schema=RECORD_SCHEMA), blank, skipped)


def _collect(frames: list[pl.DataFrame], parser: _ChunkParser, uri: str, copy: ExitStack, path: str, pending: list) -> int:
    """Append one file's records (line numbers from 1 across its chunks) to `frames`; its blank line count."""
    with copy:
        results = parser.results(path, pending)
    before, blank = 0, 0
    for records, lines, blank_here in results:
        frames.append(records.select(pl.lit(uri).alias("source_file"), pl.col("line_number") + before, pl.exclude("line_number")))
        before, blank = before + lines, blank + blank_here
    return blank


class _ChunkParser:
    """Parses files chunk by chunk: large ones in a process pool made the first time one needs it.

    Workers are spawned, not forked (forking a process that runs polars threads is unsafe), so
    the program's main module must guard its entry point (`if __name__ == "__main__":`). When
    the workers cannot run, the pool is given up and every file is parsed in this process.
    """

    def __init__(self, stack: ExitStack, translation_ids: list[int]) -> None:
        self.stack, self.translation_ids, self.pool, self.broken = stack, translation_ids, None, False

    def submit(self, path: str) -> list:
        """Futures of the file's chunks, or their results when it is parsed here."""
        parts = chunks(path)
        if len(parts) > 1 and WORKERS > 1 and not self.broken and os.path.getsize(path) >= POOL_MIN_BYTES:
            try:
                return [self._pool().submit(parse_chunk, part, self.translation_ids) for part in parts]
            except (BrokenProcessPool, OSError, RuntimeError) as exc:
                self._give_up(exc)
        return [parse_chunk(part, self.translation_ids) for part in parts]

    def results(self, path: str, pending: list) -> list[tuple[pl.DataFrame, int, int]]:
        if not pending or not isinstance(pending[0], Future):
            return pending
        try:
            return [future.result() for future in pending]
        except (BrokenProcessPool, OSError, RuntimeError) as exc:
            self._give_up(exc)
            return [parse_chunk(part, self.translation_ids) for part in chunks(path)]

    def _pool(self) -> ProcessPoolExecutor:
        if self.pool is None:
            context = multiprocessing.get_context("spawn")
            self.pool = self.stack.enter_context(ProcessPoolExecutor(WORKERS, mp_context=context))
        return self.pool

    def _give_up(self, exc: BaseException) -> None:
        log.warning("worker processes unavailable (%s); parsing in this process", exc)
        self.broken = True


def judgments_for_model(records: pl.DataFrame, judge_version: str, model: str, translation_id: int) -> pl.DataFrame:
    """What the judge said about one model's translation: the `raw_judgments` rows of a partition.

    `parse_error` is the line's code, else `no_entry_for_id` or the chosen entry's fault.
    """
    wanted = str(translation_id)
    # The first entry whose id is this translation's ("1", 1, "1.0"); arg_max of the hits is
    # several times faster than list.filter on half a million arrays.
    hits = pl.col("judge_entries").list.eval(pl.element().struct.field("id").str.strip_chars().is_in([wanted, f"{wanted}.0"]))
    entry = pl.when(hits.list.any()).then(pl.col("judge_entries").list.get(hits.list.arg_max(), null_on_oob=True))
    translation = pl.col("translations").list.filter(pl.element().struct.field("id") == wanted).list.first().struct.field("text")
    return records.with_columns(entry.alias("_entry")).select(
        pl.lit(judge_version).alias("judge_version"),
        pl.lit(model).alias("model"),
        "record_id",
        "source_file",
        "line_number",
        "target_lang",
        "source",
        translation.alias("translation"),
        pl.col("_entry").struct.field("thought").alias("thought"),
        pl.col("_entry").struct.field("scores").alias("scores"),
        "stop_reason",
        "error",
        "input_tokens",
        "output_tokens",
        pl.coalesce(
            "parse_error",
            pl.when(pl.col("_entry").is_null()).then(pl.lit(NO_ENTRY_FOR_ID)),
            pl.col("_entry").struct.field("fault"),
        ).alias("parse_error"),
        "excerpt",
    )
