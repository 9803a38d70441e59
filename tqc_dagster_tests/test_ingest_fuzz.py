"""Issue 13, kind 2, as a property: real-shaped records, mutated in their structure and in their bytes, never make
ingest raise; every non-blank line is one raw row per model, accounted for (valid + quarantined + duplicates);
and every row carries its own line's record id.

The suite runs a few thousand examples in total (TQC_FUZZ_SCALE multiplies them, for a long run by hand).
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings, strategies as st

from tqc_dagster.core import batch_lines as bl
from tqc_dagster.core import batch_outputs as bo
from tqc_dagster.core import judge_array as ja
from tqc_dagster_tests import records as rec
from tqc_dagster_tests.ingest_oracle import check_ingest, oracle_record_id

SCALE = float(os.environ.get("TQC_FUZZ_SCALE", "1"))

BASES = [
    rec.judge_record("meta_All_Beauty_0_1"),
    rec.judge_record("meta_All_Beauty_0_2", shape="converse", thinking=True, string_ids=True),
    rec.judge_record("meta_All_Beauty_0_3", request="converse", shape="converse"),
    rec.judge_record("meta_Home_and_Kitchen_1_1", thinking=True, redacted_thinking=True, fence=True, prose="[note] {x}"),
    rec.judge_record("meta_Home_and_Kitchen_1_2", prompt_shape="string", prefill="[", text=rec.continuation("[")),
    rec.judge_record("meta_Home_and_Kitchen_1_3", prompt_shape="split", prefill_shape="string", string_scores=True, reverse=True),
    rec.judge_record("meta_All_Beauty_0_1", indent=2),  # a re-judged copy
    rec.judge_record("meta_All_Beauty_0_4", error={"errorCode": 400, "errorMessage": "bad"}),
    rec.judge_record("meta_All_Beauty_0_5", stop_reason="max_tokens", text=rec.judge_text(cut_at=120)),
    rec.judge_record("meta_All_Beauty_0_6", source="Cable <2m> & more", target_lang="ru-ru", translations={1: "Кабель <2м>", 2: "None"}),
]

# --- structural mutations: on the record, and on the judge's array inside its text ---------------------------

ODD_VALUES = st.sampled_from([
    None, 0, -1.5, 2**70, True, "", "x", "None", "5", [], {}, [[]], {"a": {"b": []}}, [None, {"id": 1}],
    "\u0000\ufffd\u001b", "\r\n", "中" * 50, "[" * 3000 + "]" * 3000, {"type": "text", "text": "[{}]"},
])
INDEX = st.integers(min_value=0, max_value=10_000)


def _nodes(value: Any, path: tuple = ()) -> list[tuple]:
    """Every path into the JSON tree (dict keys and list indices), the root included."""
    found = [path]
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in children:
        found += _nodes(child, (*path, key))
    return found


def _replace(tree: Any, path: tuple, change) -> Any:
    if not path:
        return change(tree)
    parent = tree
    for key in path[:-1]:
        parent = parent[key]
    result = change(parent[path[-1]])
    if result is _DELETE:
        del parent[path[-1]]
    else:
        parent[path[-1]] = result
    return tree


_DELETE = object()


def _mutate_tree(tree: Any, op: tuple) -> Any:
    kind, where, odd = op
    paths = _nodes(tree)
    path = paths[where % len(paths)]
    changes = {
        "retype": lambda _: copy.deepcopy(odd),
        "delete": lambda _: _DELETE if path else None,
        "wrap": lambda node: [node],
        "box": lambda node: {"value": node},
        "double": lambda node: node + node if isinstance(node, (list, str)) else node,
        "stringify": lambda node: json.dumps(node) if not isinstance(node, str) else node,
    }
    return _replace(tree, path, changes[kind])


TREE_OPS = st.tuples(st.sampled_from(["retype", "delete", "wrap", "box", "double", "stringify"]), INDEX, ODD_VALUES)
JUDGE_TEXT_FORMS = st.sampled_from(["plain", "comma-joined", "two-arrays", "fenced", "prose-around", "objects-only"])


def _judge_text(entries: Any, form: str) -> str:
    dump = lambda value: json.dumps(value, ensure_ascii=False)  # noqa: E731
    if form == "comma-joined" and isinstance(entries, list):
        return ",\n".join(dump([item]) for item in entries)
    if form == "two-arrays" and isinstance(entries, list):
        return dump(entries[:1]) + "\n" + dump(entries[1:])
    if form == "fenced":
        return f"```json\n{dump(entries)}\n```\nDone [ok]."
    if form == "prose-around":
        return f"Compare [1] and [2]:\n{dump(entries)}\nSee {{above}}."
    if form == "objects-only" and isinstance(entries, list):
        return ", ".join(dump(item) for item in entries)
    return dump(entries)


def _mutated_record(base: int, tree_ops: list[tuple], judge_ops: list[tuple], form: str) -> dict:
    record = copy.deepcopy(BASES[base % len(BASES)])
    blocks = record.get("modelOutput", {}).get("content") or record.get("modelOutput", {}).get("output", {}).get("message", {}).get("content")
    text_block = next((block for block in blocks or [] if "text" in block), None)
    if text_block is not None and (judge_ops or form != "plain"):
        entries = rec.default_entries()
        for op in judge_ops:
            entries = _mutate_tree(entries, op)
        text_block["text"] = _judge_text(entries, form)
    for op in tree_ops:
        record = _mutate_tree(record, op)
    return record


# --- byte mutations on the lines -----------------------------------------------------------------------------

JUNK = st.sampled_from([b"\xff", b"\xc3", b"\xe4\xb8", b"\x80", b"\xef\xbb\xbf", b"\x00", b"\r", b"\n", b",", b"}", b"]", b"[", b"{",
                        b'"', b"\\", b"\\u", b"\\ud800", b" ", b'"recordId": "meta_X_1_1"', b"\t\n\r"])
BYTE_OPS = st.tuples(st.sampled_from(["insert", "replace", "delete", "truncate", "join", "split", "blank", "duplicate"]), INDEX, INDEX, JUNK)


def _apply_bytes(lines: list[bytes], op: tuple) -> list[bytes]:
    kind, which, where, junk = op
    lines = list(lines)
    i = which % len(lines)
    line, at = lines[i], where % (len(lines[i]) + 1)
    if kind == "insert":
        lines[i] = line[:at] + junk + line[at:]
    elif kind == "replace":
        lines[i] = line[:at] + junk + line[at + len(junk):]
    elif kind == "delete":
        lines[i] = line[:at] + line[at + len(junk):]
    elif kind == "truncate":
        lines[i] = line[:at]
    elif kind == "join" and len(lines) > 1:
        lines[i : i + 2] = [line + junk.strip(b"\n") + lines[(i + 1) % len(lines)]] if i + 1 < len(lines) else [line]
    elif kind == "split":
        lines[i : i + 1] = [line[:at], line[at:]]
    elif kind == "blank":
        lines.insert(i, junk if junk.isspace() else b"")
    elif kind == "duplicate":
        lines.insert(i, line)
    return lines


def _serialize(record: dict) -> bytes:
    return json.dumps(record, ensure_ascii=False).encode("utf-8", "surrogatepass")


RECORD = st.builds(_mutated_record, st.integers(0, len(BASES) - 1), st.lists(TREE_OPS, max_size=3), st.lists(TREE_OPS, max_size=2), JUDGE_TEXT_FORMS)


# --- what must hold ----------------------------------------------------------------------------------------------


def _files(root: Path, lines: list[bytes], split: int, crlf: bool) -> dict[str, bytes]:
    newline = b"\r\n" if crlf else b"\n"
    split = split % (len(lines) + 1)
    contents = {
        str(root / "0gykcfv65eu1" / "20250201T051817Z" / "part.jsonl.out"): newline.join(lines[:split]) + newline,
        str(root / "a3kq7mimhoy5" / "20250201T135802Z" / "retry.jsonl.out"): newline.join(lines[split:]),
    }
    for path, data in contents.items():
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(data)
    return contents


@settings(max_examples=int(300 * SCALE), deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(records=st.lists(RECORD, min_size=1, max_size=5), byte_ops=st.lists(BYTE_OPS, max_size=4), split=INDEX, crlf=st.booleans())
def test_mutated_records_never_break_ingest_and_every_line_is_accounted_for(tmp_path_factory, records, byte_ops, split, crlf):
    lines = [_serialize(record) for record in records]
    for op in byte_ops:
        lines = _apply_bytes(lines, op)
    check_ingest(_files(tmp_path_factory.mktemp("fuzz"), lines, split, crlf))


@settings(max_examples=int(2000 * SCALE), deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(record=RECORD, byte_ops=st.lists(BYTE_OPS, max_size=3))
def test_a_mutated_line_decodes_to_its_own_record_id_or_to_unreadable(record, byte_ops):
    """The same mutations at the level of one line, many more of them: the line reader alone, no files."""
    lines = [_serialize(record)]
    for op in byte_ops:
        lines = _apply_bytes(lines, op)
    for line in lines:
        if not line.strip():
            continue
        fields = bl.decode_line(line)
        oracle = oracle_record_id(line)
        if fields is None:
            assert oracle is False, f"unreadable, but the standard library reads {line[:120]!r}"
            continue
        assert oracle is False or fields.record_id == oracle
        if fields.judge_text is not None:
            entries, code = ja.judge_array(fields.judge_text)
            assert (entries is None) == (code is not None)
        bo.prompt_fields(fields.prompt, [1, 2])
