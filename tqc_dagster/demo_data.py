"""Realistic demo batch outputs of the translation judge, for demos, tests and benchmarks.

The pipeline must survive everything real Bedrock batch jobs contain (data contract, section 2), so
this writes every output variant and fault class seen there, in realistic proportions, and returns
their exact counts as ground truth. Judge versions v1 and v2 score the same records. The output is a
pure function of (records, seed): `random.Random` streams derived from the seed, no clock, no uuid,
no set iteration order.
"""

from __future__ import annotations

import base64
import json
import random
import shutil
from datetime import datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import NamedTuple

from tqc_dagster import demo_vocab as vocab

RAW_DIR = Path("raw") / "translation_eval_cot"
SUMMARY_FILE = "demo_summary.json"
MANIFEST_FILE = "manifest.json.out"
RERUN_FILE = "retry_failed_and_sampled.jsonl.out"
LANGS = ("zh-cn", "ru-ru")
ROWS_PER_CHUNK = 100  # recordId meta_<Category>_<chunk>_<row>
MAX_TOKENS = 4096
CHARS_PER_TOKEN = 3
JOB_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
JOB_START_SPREAD_S = 40 * 86400
RERUN_DELAY_S = (3 * 3600, 72 * 3600)
SIGNATURE_BYTES, REDACTED_BYTES = 64, 96

# Shares of records; every class gets at least one record (one per kind where it has kinds).
RU_SHARE = 0.15
DESCRIPTOR_SHARE = 0.6
UNKNOWN_ID_SHARE = 0.005
SPECIAL_TITLE_SHARE = 0.05
BAD_TRANSLATION_SHARE = 0.005
# Per judge version. Faults are exclusive per record; variants only decorate fault-free lines.
FAULT_SHARES = {
    "batch_error": 0.01, "max_tokens": 0.005, "not_json": 0.002, "missing_entry": 0.002,
    "empty_thought": 0.002, "wrong_score_count": 0.002, "score_out_of_range": 0.002, "score_not_numeric": 0.002,
}
ONE_ENTRY_FAULTS = ("missing_entry", "empty_thought", "wrong_score_count", "score_out_of_range", "score_not_numeric")
VARIANT_SHARES = {
    "converse": 0.05, "fenced_prose": 0.03, "string_ids": 0.03, "string_scores": 0.02, "reordered": 0.05, "pretty": 0.02,
}
REDACTED_SHARE_OF_THINKING = 0.25
RERUN_VALID_SHARE = 0.005
TRUNCATED_SHARE = 0.001
BLANK_LINE_SHARE = 0.002

# Scores are skewed high: most translations are flawless, criterion 6 is the usual weak spot and
# criteria 0 and 5 are the rarest, so some (category, criterion, score bucket) groups stay small.
# The tail is compressed against the 481k-record set (where criteria 0 and 5 are a few % of the flaws
# but still thousands of samples): at 2,000 records every simple criterion must keep a test group with
# both labels and enough samples to measure (README, "The demo data").
FLAWLESS_SHARE = (0.55, 0.68)  # model_a (Nova Lite), model_b (Claude)
TWO_FLAWS_SHARE = 0.25
CRITERION_WEIGHTS = (10, 12, 10, 12, 14, 10, 32)
LOW_SCORES = (4.5, 4.0, 3.5, 3.0, 2.5, 2.0, 1.5, 1.0, 0.5, 0.0)
LOW_SCORE_WEIGHTS = (20, 26, 12, 14, 9, 7, 5, 3, 2, 2)  # about 28 % of flaws below 3: negatives of the simple model
NOUN_CRITERIA = (0, 1, 6)  # flaws that change the key noun; only the first one is applied
# A second judge agrees often, not always: an imperfect score changes in 20% of cases, a 5 rarely.
RESCORE_SHARE = 0.2
RESCORE_DELTAS = (-1.0, -0.5, 0.5, 1.0)
DRIFT_FROM_FIVE = (0.002, 0.01, 0.01, 0.01, 0.01, 0.002, 0.03)

_encode = json.JSONEncoder(ensure_ascii=False).encode
_PROMPT_SLOT = "@@PROMPT@@"
_INPUT_HEAD, _INPUT_TAIL = _encode({
    "anthropic_version": "bedrock-2023-05-31", "max_tokens": MAX_TOKENS, "stop_sequences": ["```"],
    "system": vocab.SYSTEM_PROMPT,
    "messages": [{"role": "user", "content": [{"type": "text", "text": _PROMPT_SLOT}]},
                 {"role": "assistant", "content": [{"type": "text", "text": "```json"}]}],
}).split(_encode(_PROMPT_SLOT))
_SYSTEM_TOKENS = len(vocab.SYSTEM_PROMPT) // CHARS_PER_TOKEN
_LOOP = " ".join([vocab.LOOPING_PHRASE] * 60)  # a degenerate thought, the usual way to hit max_tokens


class _Judge(NamedTuple):
    name: str
    folder: str
    model: str
    rescored: bool  # scores drift from the reference judgment instead of repeating it
    thinking_share: float  # extended thinking blocks (Claude 3.7 only)
    first_day: datetime


JUDGES = (
    _Judge("v1", "c35-v2", "claude-3-5-sonnet-20241022", False, 0.0, datetime(2025, 1, 6)),
    _Judge("v2", "c37", "claude-3-7-sonnet-20250219", True, 0.30, datetime(2025, 3, 3)),
)
VARIANT_KEYS = (
    "converse", "thinking", "fenced_prose", "string_ids", "string_scores", "reordered", "pretty",
    "batch_error", "max_tokens", "escaped_chars_titles", "truncated_line", "crlf_files", "rerun_duplicates",
    "bad_translation", "missing_entry", "empty_thought", "wrong_score_count", "score_out_of_range",
    "score_not_numeric", "not_json", "redacted_thinking",
)


class _Base(NamedTuple):
    """What every judge version shares: the records' categories, languages and odd inputs."""

    categories: list[int]
    ru: set[int]
    unknown_ids: set[int]
    special: dict[int, int]  # record -> index into vocab.SPECIALS
    bad: dict[int, tuple[int, str]]  # record -> (translation id, kind)


class _Record(NamedTuple):
    index: int
    record_id: str
    category: int
    head: str  # '{"recordId": …, "modelInput": {…}', identical for every judge version
    input_tokens: int
    facts: tuple[dict, dict]  # what a thought may quote, per model
    applied: tuple[frozenset, frozenset]  # criteria whose flaw is visible in the translation
    scores: tuple[list, list]  # the reference (v1) judgment
    bad_model: int  # 0, or the translation id whose text is missing, empty or None


class _Plan(NamedTuple):
    """Which records of one judge version get which fault, variant and line damage."""

    fault: dict[int, str]
    variants: dict[int, list[str]]
    rerun_valid: set[int]
    truncated: set[int]
    eof_truncated: int | None  # the last line of its file, cut without a newline
    blank_before: dict[int, str]
    crlf_category: int


def _count(share: float, n: int, minimum: int = 1) -> int:
    return max(minimum, round(share * n))


def _sample(rng: random.Random, pool: list[int], k: int) -> list[int]:
    return rng.sample(pool, min(k, len(pool)))


def _plan_base(rng: random.Random, n: int) -> _Base:
    every = range(n)
    categories = rng.choices(range(len(vocab.CATEGORIES)), [c.share for c in vocab.CATEGORIES], k=n)
    ru = set(rng.sample(every, round(RU_SHARE * n)))
    unknown = set(_sample(rng, every, _count(UNKNOWN_ID_SHARE, n)))
    special = {i: k if k < 3 else rng.randrange(len(vocab.SPECIALS))
               for k, i in enumerate(_sample(rng, every, _count(SPECIAL_TITLE_SHARE, n, 3)))}
    kinds = vocab.BAD_TRANSLATION_KINDS
    bad = {i: (rng.choice((1, 2)), kinds[k % len(kinds)])
           for k, i in enumerate(_sample(rng, every, _count(BAD_TRANSLATION_SHARE, n, len(kinds))))}
    return _Base(categories, ru, unknown, special, bad)


def _plan_version(rng: random.Random, base: _Base, judge: _Judge) -> _Plan:
    n = len(base.categories)

    def plain(i: int) -> bool:  # a line whose loss hides nothing the summary counts
        return i not in base.bad and i not in base.special and i not in base.unknown_ids

    last_of = {c: i for i, c in enumerate(base.categories)}
    categories = sorted(last_of)
    rng.shuffle(categories)
    eof = next((last_of[c] for c in categories if plain(last_of[c])), None)
    crlf = next((c for c in categories if last_of[c] != eof), categories[0])

    pool = [i for i in range(n) if i not in base.bad and i != eof]
    picks = iter(_sample(rng, pool, sum(_count(share, n) for share in FAULT_SHARES.values())))
    fault = {i: name for name, share in FAULT_SHARES.items() for i in islice(picks, _count(share, n))}
    clean = [i for i in pool if i not in fault]
    rerun_valid = set(_sample(rng, clean, _count(RERUN_VALID_SHARE, n)))
    losable = [i for i in clean if i not in rerun_valid and plain(i)]
    truncated = set(_sample(rng, losable, _count(TRUNCATED_SHARE, n) - (eof is not None)))
    if eof is not None:
        truncated.add(eof)

    decorable = [i for i in clean if i not in truncated]
    variants: dict[int, list[str]] = {}
    for name, share in VARIANT_SHARES.items():
        for i in _sample(rng, decorable, _count(share, n)):
            variants.setdefault(i, []).append(name)
    if judge.thinking_share:
        thinkable = [i for i in decorable if "converse" not in variants.get(i, ())]
        picks = _sample(rng, thinkable, _count(judge.thinking_share, n))
        redacted = _count(REDACTED_SHARE_OF_THINKING, len(picks))
        for k, i in enumerate(picks):
            variants.setdefault(i, []).extend(("thinking", "redacted_thinking") if k < redacted else ("thinking",))

    blanks = _sample(rng, list(range(n)), _count(BLANK_LINE_SHARE, n, 2))
    blank_before = {i: vocab.BLANK_LINES[k] if k < 2 else rng.choice(vocab.BLANK_LINES) for k, i in enumerate(blanks)}
    return _Plan(fault, variants, rerun_valid, truncated, eof, blank_before, crlf)


def _draw_scores(rng: random.Random, model: int) -> list[float]:
    scores = [5.0] * 7
    if rng.random() >= FLAWLESS_SHARE[model]:
        for c in rng.choices(range(7), CRITERION_WEIGHTS, k=2 if rng.random() < TWO_FLAWS_SHARE else 1):
            scores[c] = rng.choices(LOW_SCORES, LOW_SCORE_WEIGHTS)[0]
    return scores


def _mangle(quantity: str) -> str:
    """A wrong quantity, the kind a careless translation makes: 3.5 -> 35, 2 -> 20."""
    return quantity.replace(".", "") if "." in quantity else quantity + "0"


def _translate(rng: random.Random, title: dict, lang: int, model: int, scores: list[float]) -> tuple[str, dict, frozenset]:
    """One model's translation, carrying the flaws its scores describe, and the facts a thought quotes."""
    english, *terms, _ = title["noun"]
    noun = terms[lang][model]
    flawed = [c for c in range(7) if scores[c] < 5.0]
    noun_flaw = next((c for c in flawed if c in NOUN_CRITERIA), None)
    noun = {0: vocab.REFUSALS[lang], 1: english.split()[-1], 6: terms[lang][2]}.get(noun_flaw, noun)
    quantity = _mangle(title["qty"]) if 4 in flawed else title["qty"]
    size = vocab.SIZE_FORMATS[lang][model].format(q=quantity, u=vocab.UNITS[title["unit"]][1 + lang])
    desc = vocab.DESCRIPTOR_FORMATS[lang][model].format(d=title["desc"][1 + lang]) if title["desc"] else ""
    special = " " + title["special"][1 + lang] if title["special"] else ""
    facts = {
        "brand": title["brand"], "noun_en": english, "noun_tr": noun, "size_en": title["size"], "size_tr": size,
        "added": vocab.ADDED_WORDS[lang].strip(), "symbol": vocab.STRAY_SYMBOL,
        "prefix": rng.choice(vocab.LIST_PREFIXES) if 5 in flawed else "", "lang_name": vocab.LANGUAGE_NAMES[lang],
    }
    text = vocab.TEMPLATES[lang][model].format(
        prefix=facts["prefix"], brand=title["brand"], mark=vocab.STRAY_SYMBOL if 3 in flawed else "", desc=desc,
        noun=noun, size=size, special=special, added=vocab.ADDED_WORDS[lang] if 2 in flawed else "",
    )
    applied = frozenset(c for c in flawed if c not in NOUN_CRITERIA or c == noun_flaw)
    return text, facts, applied


def _content(text: str | None, bad_kind: str | None) -> str:
    if bad_kind == "missing":
        return ""
    return "<content>" + ({"empty": "", "none": "None"}.get(bad_kind, text)) + "</content>\n"


def _make_record(rng: random.Random, base: _Base, i: int, rows: list[int]) -> _Record:
    c = base.categories[i]
    category = vocab.CATEGORIES[c]
    row, rows[c] = rows[c], rows[c] + 1
    record_id = (f"rec-{i:06d}" if i in base.unknown_ids
                 else f"meta_{category.name}_{row // ROWS_PER_CHUNK}_{row % ROWS_PER_CHUNK}")
    lang = 1 if i in base.ru else 0
    noun = rng.choice(category.nouns)
    qty, unit = rng.choice(noun[3])
    title = {
        "brand": rng.choice(category.brands), "noun": noun, "qty": qty, "unit": unit,
        "size": vocab.UNITS[unit][0].format(q=qty),
        "desc": rng.choice(vocab.DESCRIPTORS) if rng.random() < DESCRIPTOR_SHARE else None,
        "special": vocab.SPECIALS[base.special[i]] if i in base.special else None,
    }
    text = " ".join(filter(None, (title["brand"], title["desc"] and title["desc"][0], title["noun"][0])))
    text += rng.choice(vocab.TITLE_SIZE_SEPARATORS) + title["size"]
    if title["special"]:
        text += ", " + title["special"][0]
    bad_model, bad_kind = base.bad.get(i, (0, None))
    contents, facts, applied, scores = [], [], [], []
    for model in (0, 1):
        model_scores = _draw_scores(rng, model)
        translation, model_facts, model_applied = _translate(rng, title, lang, model, model_scores)
        is_bad = bad_model == model + 1
        contents.append(_content(translation, bad_kind if is_bad else None))
        facts.append(model_facts)
        applied.append(frozenset() if is_bad else model_applied)
        scores.append([0.0] * 7 if is_bad else model_scores)
    prompt = vocab.USER_PROMPT.format(title=text, lang=LANGS[lang], content_1=contents[0], content_2=contents[1])
    head = f'{{"recordId": {_encode(record_id)}, "modelInput": {_INPUT_HEAD}{_encode(prompt)}{_INPUT_TAIL}'
    return _Record(i, record_id, c, head, _SYSTEM_TOKENS + len(prompt) // CHARS_PER_TOKEN,
                   tuple(facts), tuple(applied), tuple(scores), bad_model)


def _rescore(rng: random.Random, scores: tuple[list, list]) -> tuple[list, list]:
    """Another judge's scores: mostly the same, else a step up or down within [0, 5]."""
    result = []
    for model_scores in scores:
        new = []
        for c, s in enumerate(model_scores):
            if s == 5.0:
                s = 4.5 if rng.random() < DRIFT_FROM_FIVE[c] else s
            elif rng.random() < RESCORE_SHARE:
                s = min(5.0, max(0.0, s + rng.choice(RESCORE_DELTAS)))
            new.append(s)
        result.append(new)
    return tuple(result)


def _nudge(rng: random.Random, scores: tuple[list, list]) -> tuple[list, list]:
    """A re-judgment of a valid record: one score moves by half a point."""
    result = [list(s) for s in scores]
    model = result[rng.randrange(2)]
    low = [c for c in range(7) if model[c] < 5.0]
    c = rng.choice(low) if low else 6
    up = model[c] == 0.0 or (model[c] < 5.0 and rng.random() < 0.5)
    model[c] += 0.5 if up else -0.5
    return tuple(result)


def _severity(score: float) -> str:
    return "minor" if score >= 4.0 else "clear" if score >= 2.5 else "serious"


def _thought(rng: random.Random, rec: _Record, model: int, scores: list[float]) -> str:
    """Reasoning that agrees with the scores: every criterion below 5 is named with a concrete reason."""
    if rec.bad_model == model + 1:
        return vocab.EMPTY_TRANSLATION_THOUGHT
    facts, applied = rec.facts[model], rec.applied[model]
    low = [c for c in range(7) if scores[c] < 5.0]
    if not low:
        return rng.choice(vocab.FLAWLESS_THOUGHTS).format_map(facts)
    parts = [f"{vocab.CRITERION_LABELS[c]} ({_severity(scores[c])}): "
             f"{(vocab.FLAW_REASONS if c in applied else vocab.SOFT_REASONS)[c].format_map(facts)}." for c in low]
    if len(parts) == 1 and rng.random() < 0.5:
        parts.append(rng.choice(vocab.OTHERWISE))
    return " ".join(parts)


def _score_text(rng: random.Random, score: float) -> str:
    return f"{score:g}" if rng.random() < 0.5 else f"{score:.1f}"


def _break_entry(rng: random.Random, entry: dict, fault: str) -> None:
    if fault == "empty_thought":
        entry["thought"] = ""
    elif fault == "wrong_score_count":
        entry["scores"] = entry["scores"][:6]
    else:
        bad = rng.choice((7.0, -1.0) if fault == "score_out_of_range" else ("N/A", None))
        entry["scores"][rng.randrange(7)] = bad


class _OutFile:
    def __init__(self, path: Path, crlf: bool = False):
        self.path, self.newline = path, "\r\n" if crlf else "\n"
        self.handle = open(path, "w", encoding="utf-8", newline="", buffering=1 << 20)

    def write(self, line: str, newline: bool = True) -> None:
        self.handle.write(line + self.newline if newline else line)


class _Job:
    """One Bedrock job folder and the totals its manifest reports."""

    def __init__(self, folder: Path):
        self.folder, self.files = folder, []
        self.records = self.errors = self.input_tokens = self.output_tokens = 0
        folder.mkdir(parents=True)

    def open(self, name: str, crlf: bool = False) -> _OutFile:
        self.files.append(_OutFile(self.folder / name, crlf))
        return self.files[-1]

    def count(self, error: bool, input_tokens: int, output_tokens: int) -> None:
        self.records += 1
        self.errors += error
        self.input_tokens += input_tokens
        self.output_tokens += output_tokens

    def close(self, out: Path) -> dict:
        for f in self.files:
            f.handle.close()
        manifest = {
            "totalRecordCount": self.records, "processedRecordCount": self.records,
            "successRecordCount": self.records - self.errors, "errorRecordCount": self.errors,
            "inputTokenCount": self.input_tokens, "outputTokenCount": self.output_tokens,
        }
        (self.folder / MANIFEST_FILE).write_text(json.dumps(manifest) + "\n", encoding="utf-8")
        return {"job_id": self.folder.parent.name, "folder": self.folder.relative_to(out).as_posix(),
                "files": sorted(f.path.relative_to(out).as_posix() for f in self.files), "manifest": manifest}


def _job_ids(rng: random.Random) -> list[str]:
    """Two Bedrock-style job ids, sorted: the re-run job takes the larger so its folder sorts last."""
    while True:
        ids = sorted("".join(rng.choices(JOB_ID_ALPHABET, k=12)) for _ in range(2))
        if ids[0] != ids[1]:
            return ids


class _JudgeWriter:
    """Writes one judge version: its main job while the records stream by, its re-run job at the end."""

    def __init__(self, out: Path, judge: _Judge, rng: random.Random, base: _Base):
        self.out, self.judge, self.rng, self.base = out, judge, rng, base
        self.plan = _plan_version(rng, base, judge)
        main_id, rerun_id = _job_ids(rng)
        started = judge.first_day + timedelta(seconds=rng.randrange(JOB_START_SPREAD_S))
        rerun_started = started + timedelta(seconds=rng.randrange(*RERUN_DELAY_S))
        root = out / RAW_DIR / judge.folder
        self.main = _Job(root / main_id / started.strftime("%Y%m%dT%H%M%SZ"))
        self.rerun = _Job(root / rerun_id / rerun_started.strftime("%Y%m%dT%H%M%SZ"))
        self.files = {c: self.main.open(f"meta_{vocab.CATEGORIES[c].name}.jsonl.out", crlf=c == self.plan.crlf_category)
                      for c in sorted(set(base.categories))}
        self.to_rerun: list[tuple[_Record, tuple]] = []

    def write(self, rec: _Record) -> None:
        i, plan = rec.index, self.plan
        scores = _rescore(self.rng, rec.scores) if self.judge.rescored else rec.scores
        fault = plan.fault.get(i)
        if fault == "batch_error" or i in plan.rerun_valid:
            self.to_rerun.append((rec, scores))
        line, input_tokens, output_tokens = self._line(rec, scores, fault, plan.variants.get(i, ()))
        out = self.files[rec.category]
        if i in plan.blank_before:
            out.write(plan.blank_before[i])
        if i in plan.truncated:  # a writer died mid-line: the manifest counts the line, not its tokens
            line = line[: self.rng.randrange(1, len(line) - 1)]
            input_tokens = output_tokens = 0
        out.write(line, newline=i != plan.eof_truncated)
        self.main.count(fault == "batch_error", input_tokens, output_tokens)

    def _line(self, rec: _Record, scores: tuple, fault: str | None = None, variants=()) -> tuple[str, int, int]:
        rng = self.rng
        if fault == "batch_error":
            code, message = rng.choice(vocab.BATCH_ERRORS)
            return f'{rec.head}, "error": {_encode({"errorCode": code, "errorMessage": message})}}}', 0, 0
        entries = [{"id": m + 1, "thought": _thought(rng, rec, m, scores[m]), "scores": list(scores[m])} for m in (0, 1)]
        thoughts = [e["thought"] for e in entries]
        text, stop_reason, stop_sequence = self._judge_text(entries, fault, variants)
        output_tokens = MAX_TOKENS if stop_reason == "max_tokens" else len(text) // CHARS_PER_TOKEN + 2
        if "converse" in variants:
            body = {"output": {"message": {"role": "assistant", "content": [{"text": text}]}}, "stopReason": "end_turn",
                    "usage": {"inputTokens": rec.input_tokens, "outputTokens": output_tokens,
                              "totalTokens": rec.input_tokens + output_tokens}}
        else:
            blocks = []
            if "thinking" in variants:
                thinking = vocab.THINKING.format(t1=thoughts[0], t2=thoughts[1])
                output_tokens += len(thinking) // CHARS_PER_TOKEN
                signature = base64.b64encode(rng.randbytes(SIGNATURE_BYTES)).decode()
                blocks.append({"type": "thinking", "thinking": thinking, "signature": signature})
            if "redacted_thinking" in variants:
                blocks.append({"type": "redacted_thinking", "data": base64.b64encode(rng.randbytes(REDACTED_BYTES)).decode()})
            blocks.append({"type": "text", "text": text})
            body = {"id": f"msg_bdrk_01{rng.getrandbits(96):024x}", "type": "message", "role": "assistant",
                    "model": self.judge.model, "content": blocks, "stop_reason": stop_reason,
                    "stop_sequence": stop_sequence, "usage": {"input_tokens": rec.input_tokens, "output_tokens": output_tokens}}
        return f'{rec.head}, "modelOutput": {_encode(body)}}}', rec.input_tokens, output_tokens

    def _judge_text(self, entries: list[dict], fault: str | None, variants) -> tuple[str, str, str | None]:
        """The judge's reply text, with the variant's or fault's shape; returns (text, stop_reason, stop_sequence)."""
        rng = self.rng
        if fault == "not_json":
            return rng.choice(vocab.NOT_JSON_REPLIES), "end_turn", None
        if fault in ONE_ENTRY_FAULTS:
            if fault == "missing_entry":
                del entries[rng.randrange(2)]
            else:
                _break_entry(rng, entries[rng.randrange(2)], fault)
        if fault == "max_tokens":
            entries[0]["thought"] += " " + _LOOP
        for e in entries:
            if "string_ids" in variants:
                e["id"] = str(e["id"])
            if "string_scores" in variants:
                e["scores"] = [_score_text(rng, s) for s in e["scores"]]
        if "reordered" in variants:
            entries.reverse()
        if "pretty" in variants:
            array = json.dumps(entries, indent=2, ensure_ascii=False)
        else:
            array = "[" + ",\n ".join(map(_encode, entries)) + "]"
        if fault == "max_tokens":  # cut off inside the looping thought
            start = array.index(_LOOP)
            return "\n" + array[: rng.randrange(start, start + len(_LOOP))], "max_tokens", None
        if "fenced_prose" in variants:
            return f"```json\n{array}\n```\n\n{rng.choice(vocab.FENCE_PROSE)}", "end_turn", None
        return f"\n{array}\n", "stop_sequence", "```"

    def finish(self) -> dict:
        """Write the re-run job, the manifests, and return this judge version's ground truth."""
        rerun_file = self.rerun.open(RERUN_FILE)
        for rec, scores in self.to_rerun:
            if rec.index in self.plan.rerun_valid:
                scores = _nudge(self.rng, scores)
            line, input_tokens, output_tokens = self._line(rec, scores)
            rerun_file.write(line)
            self.rerun.count(False, input_tokens, output_tokens)
        jobs = [self.main.close(self.out), self.rerun.close(self.out)]
        return {
            "folder": (RAW_DIR / self.judge.folder).as_posix(),
            "judge_model": self.judge.model,
            "jobs": jobs,
            "files": [f for job in jobs for f in job["files"]],
            "lines": self.main.records + self.rerun.records,
            "blank_lines": len(self.plan.blank_before),
            "variants": self._variant_counts(),
            "samples": self._sample_counts(),
        }

    def _variant_counts(self) -> dict[str, int]:
        plan, base = self.plan, self.base
        counts = dict.fromkeys(VARIANT_KEYS, 0)
        for names in plan.variants.values():
            for name in names:
                counts[name] += 1
        for name in plan.fault.values():
            counts[name] += 1
        counts.update(escaped_chars_titles=len(base.special), truncated_line=len(plan.truncated), crlf_files=1,
                      rerun_duplicates=len(self.to_rerun), bad_translation=len(base.bad))
        return counts

    def _sample_counts(self) -> dict:
        """(non-blank line x model) pairs as the data contract's rules must account for them."""
        counts, n = self._variant_counts(), len(self.base.categories)
        quarantined = {"truncated_line": 2 * counts["truncated_line"], "max_tokens": 2 * counts["max_tokens"],
                       "not_json": 2 * counts["not_json"], "bad_translation": counts["bad_translation"]}
        quarantined.update({name: counts[name] for name in ONE_ENTRY_FAULTS})
        total_quarantined = sum(quarantined.values())
        return {"valid": 2 * n - total_quarantined, "quarantined": total_quarantined,
                "duplicates": 2 * counts["rerun_duplicates"], "quarantined_by_fault": quarantined}


def _prepare(out: Path) -> None:
    """Clear judge folders an earlier demo run wrote (stale jobs would match the globs); never others."""
    folders = [out / RAW_DIR / judge.folder for judge in JUDGES]
    if not (out / SUMMARY_FILE).exists() and any(f.exists() and any(f.iterdir()) for f in folders):
        raise FileExistsError(f"{out / RAW_DIR} holds batch outputs not written by write_demo_data; use another folder")
    for folder in folders:
        if folder.exists():
            shutil.rmtree(folder)


def write_demo_data(out_dir: str | Path, records: int = 2000, seed: int = 0) -> dict:
    """Writes realistic batch outputs for judge versions v1 and v2 under out_dir; returns a summary dict.

    Every variant and fault class occurs at least once from 300 records on; the summary (also written to
    `<out_dir>/demo_summary.json`) gives their exact counts and the expected valid / quarantined /
    duplicate (record, model) pairs, as ground truth for the pipeline's tests.
    """
    if records < 1:
        raise ValueError(f"records must be at least 1, got {records}")
    out = Path(out_dir)
    _prepare(out)
    rng = random.Random(seed)
    base_rng = random.Random(rng.getrandbits(64))
    base = _plan_base(base_rng, records)
    writers = [_JudgeWriter(out, judge, random.Random(rng.getrandbits(64)), base) for judge in JUDGES]
    rows = [0] * len(vocab.CATEGORIES)
    for i in range(records):
        rec = _make_record(base_rng, base, i, rows)
        for writer in writers:
            writer.write(rec)
    product_categories = {c.name: rows[k] - sum(1 for i in base.unknown_ids if base.categories[i] == k)
                          for k, c in enumerate(vocab.CATEGORIES)}
    summary = {
        "records": records,
        "seed": seed,
        "product_categories": {**product_categories, "unknown": len(base.unknown_ids)},
        "target_langs": {LANGS[0]: records - len(base.ru), LANGS[1]: len(base.ru)},
        "judge_versions": {writer.judge.name: writer.finish() for writer in writers},
    }
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary
