"""The judge's array of entries in its text: `[{"id", "thought", "scores": [7 numbers]}, ...]`.

The judge writes one entry per translation id, in a JSON array that may be fenced, set among
prose, or split into one array per translation joined by a comma. The common case is decoded by
msgspec against a typed entry; the rest by the standard library, one `[` at a time.
"""

from __future__ import annotations

import re
from typing import Any, Union

import msgspec

from tqc_dagster.core.batch_lines import INT64_BOUND, LENIENT_JSON, normal_newlines, scalar_text, valid_unicode

# parse_error codes of the judge array, then of one model's entry.
NO_JUDGE_ARRAY = "no_judge_array"  # no `[{` in the judge text
INVALID_JUDGE_ARRAY = "invalid_judge_array"  # an `[{`, but no JSON array of objects decodes from it
THOUGHT_NOT_TEXT = "thought_not_text"  # the entry's thought is a list, object, number or boolean
SCORES_NOT_A_LIST = "scores_not_a_list"  # the entry's scores are an object, string or number


class _ScoredEntry(msgspec.Struct, gc=False):
    """A judge entry whose scores are all numbers: the common case, read without a Python step per score."""

    id: Any = None
    thought: Any = None
    scores: Union[list[float], None] = None


_SCORED_ENTRIES = msgspec.json.Decoder(list[_ScoredEntry])
_ANY = msgspec.json.Decoder()

_ARRAY_START = re.compile(r"\[\s*\{")
_NEXT_ARRAY = re.compile(r"\s*,?\s*(?=\[)")
MAX_ARRAY_STARTS = 64  # `[` positions tried before an output is called unparseable

# id, thought, scores, fault, and whether the scores are floats (else text, or None)
Entry = tuple[str | None, str | None, list | None, str | None, bool]


def judge_array(text: str) -> tuple[list[Entry] | None, str | None]:
    """The judge's entries in its text (prefill + output), or None and a parse_error code.

    The entries are the first JSON array holding an object, bare, fenced or among prose with
    brackets of its own; arrays of objects right after it (`[...], [...]`: one per translation)
    are read with it. An element that is not an object is no entry. `no_judge_array`: no `{`
    after a `[`; `invalid_judge_array`: there is one, but no such array decodes.
    """
    first = text.find("[")
    if first < 0 or text.find("{", first) < 0:
        return None, NO_JUDGE_ARRAY
    start = _ARRAY_START.search(text, first)
    values = _whole_array(text, first if start is None else start.start())
    if values is None:
        values = _scan_arrays(text, first)
    entries = [entry for entry in map(_entry, values or ()) if entry is not None]
    return (entries, None) if entries else (None, INVALID_JUDGE_ARRAY)


def _whole_array(text: str, start: int) -> list | None:
    """The common case, fast: from the first `[{` to the last `]` is one JSON array (of scored entries)."""
    end = text.rfind("]")
    if end < start:
        return None
    fragment = text[start : end + 1]
    try:
        return _SCORED_ENTRIES.decode(fragment)
    except msgspec.ValidationError:
        pass
    except (msgspec.DecodeError, RecursionError):
        return None
    try:
        value = _ANY.decode(fragment)
    except (msgspec.DecodeError, RecursionError):
        return None
    return value if _has_objects(value) else None


def _scan_arrays(text: str, first: int) -> list | None:
    """The first array holding an object that decodes from a `[`, with the arrays of objects that follow it."""
    start = first
    for _ in range(MAX_ARRAY_STARTS):
        values, end = _decode_at(text, start)
        if _has_objects(values):
            while (gap := _NEXT_ARRAY.match(text, end)) is not None:
                more, end = _decode_at(text, gap.end())
                if not _has_objects(more):
                    break
                values += more
            return valid_unicode(values)
        start = text.find("[", start + 1)
        if start < 0:
            break
    return None


def _decode_at(text: str, start: int) -> tuple[Any, int]:
    try:
        return LENIENT_JSON.raw_decode(text, start)
    except (ValueError, RecursionError):
        return None, start


def _has_objects(value: Any) -> bool:
    return isinstance(value, list) and any(isinstance(item, dict) for item in value)


def _entry(item: Any) -> Entry | None:
    """One entry, its id as text; a thought that is not a string, or scores that are not a list, is a fault."""
    if type(item) is _ScoredEntry and type(item.thought) is str and "\r" not in item.thought:  # the common case, as below
        entry_id = item.id
        if type(entry_id) is str or (type(entry_id) is int and -INT64_BOUND <= entry_id < INT64_BOUND):
            return str(entry_id), item.thought, item.scores, None, True
    if isinstance(item, _ScoredEntry):
        entry_id, thought, scores, numeric = item.id, item.thought, item.scores, True
    elif isinstance(item, dict):
        entry_id, thought, scores, numeric = item.get("id"), item.get("thought"), item.get("scores"), False
    else:
        return None
    fault = None
    if thought is not None and not isinstance(thought, str):
        thought, fault = None, THOUGHT_NOT_TEXT
    elif thought is not None:
        thought = normal_newlines(thought)
    if not numeric and isinstance(scores, list):
        scores = [scalar_text(score) for score in scores]
    elif not numeric and scores is not None:
        scores, fault = None, fault or SCORES_NOT_A_LIST
    return scalar_text(entry_id), thought, scores, fault, numeric
