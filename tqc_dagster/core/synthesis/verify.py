"""Judge-verified synthesis: a sample the bedrock backend made is kept only when the judge puts it in its group.

Each well-formed sample goes to the judge model as one record of the real judge jobs
(core/judge_prompt.py): the rubric as system prompt, the sample's source in `<source>`, its
translation as translation id 1 of `<translations target_lang="...">` (id 2 left without content,
as in a real record whose second model wrote nothing), the ```json prefill and the closing-fence
stop sequence, sent through the same ConverseClient (limiter, retries, cache) as generation.

The answer is read exactly as ingest reads a batch output line: `batch_outputs.parse_lines` (the
judge-array reader, `judge_array`), `judgments_for_model` for id 1, then `judgments.process` (the
quarantine rules and `with_derived_columns`). The verdict, per sample:
- kept: a valid judgment whose derived criterion and score_bucket are the group's; the sample
  then carries the judge's thought and scores instead of the generator's;
- `judge_other_group`: a valid judgment that puts it in another group (another criterion, another
  bucket, flawless, or criterion 6);
- `judge_<quarantine reason>` (e.g. `judge_unparseable_judge_output`, `judge_truncated_output`):
  an answer ingest would quarantine;
- `judge_request_failed`: the judge request still failed after every attempt.
Only an answer that reads as a valid judgment is cached, so an unreadable one is asked again by a rerun.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import polars as pl

from tqc_dagster.core.batch_outputs import judgments_for_model, parse_lines
from tqc_dagster.core.judge_prompt import JUDGE_PREFILL, JUDGE_STOP, JUDGE_SYSTEM_PROMPT, JUDGE_USER_PROMPT
from tqc_dagster.core.judgments import Thresholds, process
from tqc_dagster.core.synthesis.bedrock import Converser

VERIFY_ID = 1  # the translation id the verified sample takes in the judge prompt
OTHER_GROUP = "judge_other_group"
REQUEST_FAILED = "judge_request_failed"
REASON_PREFIX = "judge_"  # + a quarantine reason of core/judgments.py
TEMPERATURE = 0.0  # the judge's most likely verdict, the same on every run
_SOURCE_FILE = "bedrock-judge-verification"  # what the reading's source_file column holds


def judge_prompt(source: str, translation: str, target_lang: str) -> str:
    """The real judge jobs' user turn for one translation (id VERIFY_ID; the other id's block has no content)."""
    contents = {f"content_{i}": "" for i in (1, 2)}
    contents[f"content_{VERIFY_ID}"] = f"<content>{translation}</content>\n"
    return JUDGE_USER_PROMPT.format(title=source, lang=target_lang, **contents)


def judge_messages(source: str, translation: str, target_lang: str) -> list[dict]:
    """The Converse messages of a judge request: the user turn, then the assistant prefill."""
    return [
        {"role": "user", "content": [{"text": judge_prompt(source, translation, target_lang)}]},
        {"role": "assistant", "content": [{"text": JUDGE_PREFILL}]},
    ]


def read_judgments(requests: Sequence[dict], answers: Sequence[dict], thresholds: Thresholds) -> list[dict | str]:
    """What ingest makes of each (judge request, Converse answer): the judgment or the quarantine reason.

    A judgment is {"thought": str, "scores": [7 floats], "criterion": int | None, "score_bucket": int}
    (derived as `with_derived_columns` derives them); a reason is `judge_<quarantine reason>`.
    """
    if not requests:
        return []
    lines = [
        json.dumps({"recordId": f"verify-{i}", "modelInput": {"messages": request["messages"]}, "modelOutput": answer}, ensure_ascii=False).encode()
        for i, (request, answer) in enumerate(zip(requests, answers, strict=True))
    ]
    records, _ = parse_lines(lines, [VERIFY_ID])
    raw = judgments_for_model(records.with_columns(pl.lit(_SOURCE_FILE).alias("source_file")), "verify", "verify", VERIFY_ID)
    samples, quarantined, _ = process(raw, thresholds)
    found: dict[str, dict | str] = {row["record_id"]: REASON_PREFIX + row["reason"] for row in quarantined.iter_rows(named=True)}
    for row in samples.select("record_id", "thought", "scores", "criterion", "score_bucket").iter_rows(named=True):
        found[row.pop("record_id")] = row
    return [found[f"verify-{i}"] for i in range(len(lines))]


def readable(request: dict, thresholds: Thresholds):
    """The client's `accept` for a judge answer: one that reads as a valid judgment (whatever its group)."""
    return lambda answer: isinstance(read_judgments([request], [answer], thresholds)[0], dict)


@dataclass
class JudgeVerifier:
    """Asks `client` (the judge model) for the verdict on samples; `counts` adds up judged, kept and reasons."""

    client: Converser  # of the judge model
    thresholds: Thresholds
    max_tokens: int
    counts: Counter = field(default_factory=Counter)

    def verdicts(self, candidates: Sequence[tuple[tuple, str, dict]]) -> list[dict | str]:
        """Per (group key (product_category, criterion, score_bucket), target_lang, sample dict of source,
        translation, target_lang, thought, scores): the sample with the judge's thought and scores when the
        judge puts it in the group, else the reason it is rejected."""
        requests = [
            self.client.request(judge_messages(sample["source"], sample["translation"], lang), system=JUDGE_SYSTEM_PROMPT,
                                max_tokens=self.max_tokens, temperature=TEMPERATURE, stop_sequences=[JUDGE_STOP])
            for _, lang, sample in candidates
        ]
        answers = self.client.converse_many(requests, [readable(request, self.thresholds) for request in requests])
        answered = [i for i, answer in enumerate(answers) if not isinstance(answer, Exception)]
        readings = dict(zip(answered, read_judgments([requests[i] for i in answered], [answers[i] for i in answered], self.thresholds)))
        verdicts = []
        for i, (key, _, sample) in enumerate(candidates):
            reading = readings.get(i, REQUEST_FAILED)
            if isinstance(reading, dict):
                in_group = (reading["criterion"], reading["score_bucket"]) == tuple(key[1:])
                reading = {**sample, "thought": reading["thought"], "scores": reading["scores"]} if in_group else OTHER_GROUP
            verdicts.append(reading)
            self.counts.update(["judged", "kept" if isinstance(reading, dict) else reading])
        return verdicts

    def summary(self) -> dict:
        """{"judge_model", "judged", "kept", "rejected": {reason: count}} of every verdict so far."""
        rejected = {reason: n for reason, n in sorted(self.counts.items()) if reason.startswith(REASON_PREFIX)}
        return {"judge_model": self.client.model_id, "judged": self.counts["judged"], "kept": self.counts["kept"], "rejected": rejected}
