"""Builders for Amazon Bedrock batch-inference `.jsonl.out` lines, as Python dicts and strings.

`judge_record(...)` makes one valid judge record (data contract, section 2) and every knob a
test needs to turn it into a variant or a fault: output shape (Anthropic messages body or
Converse body), thinking blocks, a ```json fence followed by prose, string ids, string scores,
reordered entries, a pretty-printed array, stop_reason, an error record, a missing output, ...
`line(record)` serializes it to one JSONL line, `write_lines(path, lines)` writes a file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# A translation passed as MISSING has no <content> element in its <translation> block;
# one passed as NO_BLOCK has no <translation> block at all.
MISSING = object()
NO_BLOCK = object()
# Passed as an entry key's value, the key is left out of the judge entry.
OMIT = object()

DEFAULT_RECORD_ID = "meta_All_Beauty_3_17"
DEFAULT_SOURCE = "Lodge Cast Iron Skillet 10 Inch"
DEFAULT_TRANSLATIONS = {1: "Lodge 铸铁煎锅 10 英寸", 2: "Lodge 10英寸铸铁平底锅"}
SCORES_A = [5.0, 5.0, 5.0, 5.0, 4.0, 5.0, 4.5]
SCORES_B = [5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0]
THOUGHT_A = "The size is rendered as 10 英寸, fine; 铸铁煎锅 is a reasonable word choice."
THOUGHT_B = "Accurate and fluent; every key word is translated with the appropriate term."

INSTRUCTIONS = (
    "## Instructions\n"
    "Score each translation on the 7 criteria, from 0 to 5. Answer with a JSON array such as\n"
    '[{"id": 1, "thought": "...", "scores": [5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0]}]'
)
SYSTEM = "You are a strict translation reviewer. <rubric: the 7 criteria>"
USAGE = {"input_tokens": 812, "output_tokens": 233}


def entry(translation_id: Any, thought: Any = OMIT, scores: Any = OMIT) -> dict[str, Any]:
    """One judge entry; OMIT leaves a key out."""
    item: dict[str, Any] = {"id": translation_id}
    if thought is not OMIT:
        item["thought"] = thought
    if scores is not OMIT:
        item["scores"] = scores
    return item


def default_entries() -> list[dict[str, Any]]:
    return [entry(1, THOUGHT_A, list(SCORES_A)), entry(2, THOUGHT_B, list(SCORES_B))]


def prompt_text(source: Any = DEFAULT_SOURCE, translations: dict[Any, Any] | None = None, target_lang: str = "zh-cn") -> str:
    """The user turn of a judge prompt; titles are not XML-escaped (as in real records)."""
    translations = DEFAULT_TRANSLATIONS if translations is None else translations
    parts = ["## Source Text\n<source>\n"]
    if source is not MISSING:
        parts.append(f"<content>{source}</content>\n")
    parts.append("</source>\n\n## Translations\n")
    parts.append(f'<translations target_lang="{target_lang}">\n')
    for translation_id, text in translations.items():
        if text is NO_BLOCK:
            continue
        translator = "machine" if str(translation_id) == "1" else "expert"
        parts.append(f'<translation id="{translation_id}">\n<translator>{translator}</translator>\n')
        if text is not MISSING:
            parts.append(f"<content>{text}</content>\n")
        parts.append("</translation>\n")
    parts.append("</translations>\n\n")
    parts.append(INSTRUCTIONS)
    return "".join(parts)


def judge_text(
    entries: list[dict[str, Any]] | None = None,
    *,
    string_ids: bool = False,
    string_scores: bool = False,
    reverse: bool = False,
    indent: int | None = None,
    fence: bool = False,
    prose: str | None = None,
    cut_at: int | None = None,
) -> str:
    """What the judge wrote after the assistant prefill "```json"."""
    entries = default_entries() if entries is None else [dict(item) for item in entries]
    if string_ids:
        for item in entries:
            item["id"] = str(item["id"])
    if string_scores:
        for item in entries:
            if isinstance(item.get("scores"), list):
                item["scores"] = [str(score) for score in item["scores"]]
    if reverse:
        entries = entries[::-1]
    array = json.dumps(entries, ensure_ascii=False, indent=indent)
    text = f"```json\n{array}\n```" if fence else f"\n{array}\n"
    if prose is not None:
        text = f"{text}\n\n{prose}"
    if cut_at is not None:
        text = text[:cut_at]
    return text


def anthropic_output(
    text: str,
    *,
    thinking: bool = False,
    redacted_thinking: bool = False,
    stop_reason: str | None = "stop_sequence",
) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if thinking:
        content.append(
            {
                "type": "thinking",
                "thinking": 'Compare [1] and [2]: {"units": "inch"} vs "英寸" ... ]}',
                "signature": "EqQBCkYIARgCIkAsig",
            }
        )
    if redacted_thinking:
        content.append({"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIw"})
    content.append({"type": "text", "text": text})
    return {
        "id": "msg_bdrk_01Xyz",
        "type": "message",
        "role": "assistant",
        "model": "claude-3-7-sonnet-20250219",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": "```" if stop_reason == "stop_sequence" else None,
        "usage": dict(USAGE),
    }


def converse_output(
    text: str,
    *,
    thinking: bool = False,
    stop_reason: str | None = "end_turn",
) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if thinking:
        content.append({"reasoningContent": {"reasoningText": {"text": "Think [1] vs {2} \"quoted\"", "signature": "sig"}}})
    content.append({"text": text})
    return {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop_reason,
        "usage": {"inputTokens": USAGE["input_tokens"], "outputTokens": USAGE["output_tokens"], "totalTokens": 1045},
        "metrics": {"latencyMs": 2311},
    }


def user_content(text: str, shape: str = "blocks") -> Any:
    """A user turn's content in one of the legal shapes (AWS, "Anthropic Claude Messages API"; Converse ContentBlock).

    blocks: one text block; string: the bare string; split: two text blocks; image: an image block first;
    converse: Converse blocks ({"text": ...}, no "type").
    """
    if shape == "string":
        return text
    if shape == "split":
        middle = text.index("## Translations")
        return [{"type": "text", "text": text[:middle]}, {"type": "text", "text": text[middle:]}]
    if shape == "image":
        image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
        return [image, {"type": "text", "text": text}]
    if shape == "converse":
        return [{"text": text}]
    if shape == "blocks":
        return [{"type": "text", "text": text}]
    raise ValueError(f"unknown content shape {shape!r}")


def model_input(
    prompt: str, *, prompt_shape: str = "blocks", prefill: str | None = "```json", prefill_shape: str = "blocks", request: str = "anthropic"
) -> dict[str, Any]:
    """The request body: an Anthropic messages body, or a Converse / Nova body (request="converse").

    `prefill` is the final assistant turn (None: no assistant turn); the response continues it.
    """
    if request == "converse":
        messages = [{"role": "user", "content": user_content(prompt, "converse")}]
        if prefill is not None:
            messages.append({"role": "assistant", "content": [{"text": prefill}]})
        return {"schemaVersion": "messages-v1", "system": [{"text": SYSTEM}], "messages": messages,
                "inferenceConfig": {"maxTokens": 4096, "stopSequences": ["```"]}}
    messages = [{"role": "user", "content": user_content(prompt, prompt_shape)}]
    if prefill is not None:
        messages.append({"role": "assistant", "content": prefill if prefill_shape == "string" else [{"type": "text", "text": prefill}]})
    return {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 4096, "stop_sequences": ["```"], "system": SYSTEM, "messages": messages}


def continuation(prefill: str, entries: list[dict[str, Any]] | None = None) -> str:
    """What a judge writes after a prefill that opens the array (e.g. "[" or "[{"): the rest of it."""
    array = json.dumps(default_entries() if entries is None else entries, ensure_ascii=False)
    assert array.startswith(prefill), (array[:10], prefill)
    return array[len(prefill):]


def judge_record(
    record_id: Any = DEFAULT_RECORD_ID,
    *,
    source: Any = DEFAULT_SOURCE,
    target_lang: str = "zh-cn",
    translations: dict[Any, Any] | None = None,
    entries: list[dict[str, Any]] | None = None,
    text: str | None = None,
    shape: str = "anthropic",
    thinking: bool = False,
    redacted_thinking: bool = False,
    fence: bool = False,
    prose: str | None = None,
    string_ids: bool = False,
    string_scores: bool = False,
    reverse: bool = False,
    indent: int | None = None,
    stop_reason: Any = OMIT,
    error: dict[str, Any] | None = None,
    model_output: bool = True,
    omit_record_id: bool = False,
    prompt_shape: str = "blocks",
    prefill: str | None = "```json",
    prefill_shape: str = "blocks",
    request: str = "anthropic",
) -> dict[str, Any]:
    """One Bedrock batch record of a judge call; valid unless a knob says otherwise.

    `text` overrides the judge's whole text output; `error` adds an error object and drops
    the model output (a failed record); `model_output=False` drops the output alone.
    `prompt_shape`, `prefill`, `prefill_shape` and `request` choose the request body's legal
    variants (see `model_input`); with a prefill other than "```json", pass the matching `text`
    (e.g. `continuation("[")`).
    """
    record: dict[str, Any] = {}
    if not omit_record_id:
        record["recordId"] = record_id
    prompt = prompt_text(source, translations, target_lang)
    record["modelInput"] = model_input(prompt, prompt_shape=prompt_shape, prefill=prefill, prefill_shape=prefill_shape, request=request)
    if text is None:
        text = judge_text(
            entries, string_ids=string_ids, string_scores=string_scores, reverse=reverse, indent=indent, fence=fence, prose=prose
        )
    if error is not None:
        record["error"] = error
    elif model_output:
        if shape == "anthropic":
            kwargs = {} if stop_reason is OMIT else {"stop_reason": stop_reason}
            record["modelOutput"] = anthropic_output(text, thinking=thinking, redacted_thinking=redacted_thinking, **kwargs)
        elif shape == "converse":
            kwargs = {} if stop_reason is OMIT else {"stop_reason": stop_reason}
            record["modelOutput"] = converse_output(text, thinking=thinking, **kwargs)
        else:
            raise ValueError(f"unknown shape {shape!r}")
    return record


def line(record: dict[str, Any]) -> str:
    """One JSONL line, non-ASCII kept as is (as Bedrock writes it)."""
    return json.dumps(record, ensure_ascii=False)


def write_lines(path: Path, lines: list[str], newline: str = "\n", trailing: bool = True) -> str:
    """Write lines to `path` (creating folders); returns the path as a string."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = newline.join(lines) + (newline if trailing and lines else "")
    path.write_bytes(body.encode("utf-8"))
    return str(path)


def write_records(path: Path, records: list[dict[str, Any]], newline: str = "\n") -> str:
    return write_lines(path, [line(record) for record in records], newline=newline)
