"""One line of a Bedrock batch-inference output (`.jsonl.out`), decoded to the fields the pipeline reads.

One line is one JSON object (AWS, "View the results of a batch inference job",
https://docs.aws.amazon.com/bedrock/latest/userguide/batch-inference-results.html):

    {"recordId": "...", "modelInput": <request body>, "modelOutput": <response body>}
    {"recordId": "...", "modelInput": <request body>, "error": {"errorCode": 400, "errorMessage": "..."}}

The bodies are the model's InvokeModel bodies, in one of two shapes:

- Anthropic Messages (AWS, "Anthropic Claude Messages API",
  https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-anthropic-claude-messages.html).
  Request `messages: [{"role", "content"}]`, `content` a string or a list of blocks; a final
  assistant message is a prefill that the response continues. Response `content: [block]`,
  `stop_reason`, `usage: {"input_tokens", "output_tokens"}`. Blocks: `{"type": "text", "text"}`;
  with extended thinking `{"type": "thinking", "thinking", "signature"}` and
  `{"type": "redacted_thinking", "data"}` come first (AWS, "Extended thinking",
  https://docs.aws.amazon.com/bedrock/latest/userguide/claude-messages-extended-thinking.html).
- Converse, which Amazon Nova also writes (AWS API reference, "Converse" and "ContentBlock",
  https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html).
  Request `messages: [{"role", "content": [{"text"}]}]`; response
  `output.message.content: [{"text"} | {"reasoningContent": {...}}]`, `stopReason`,
  `usage: {"inputTokens", "outputTokens"}`.

Every line is decoded on its own by msgspec against a typed schema of only the fields the
pipeline needs, so no line can fail, hide or shift another. A line the typed decoder rejects is
read again by the standard library (invalid UTF-8 and lone surrogate escapes become U+FFFD),
each field coerced on its own; one that is still not a JSON object decodes to None.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, NamedTuple, Union

import msgspec

BOM = b"\xef\xbb\xbf"

# --- the typed schema: only the fields the pipeline reads; anything else is skipped undecoded ---------
# A value of another type fails the typed decode; the line is then read by the lenient reader, which
# coerces each field on its own (`_line_from_object`), so one odd field never costs the others.

_Str = Union[str, None]
_Count = Union[Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)], None]  # fits Int64


class _TextBlock(msgspec.Struct, gc=False):
    """A content block; thinking, signature, data, reasoningContent and images are skipped undecoded."""

    type: _Str = None
    text: _Str = None


_Content = Union[str, list[_TextBlock], None]


class _Message(msgspec.Struct, gc=False):
    role: _Str = None
    content: _Content = None


class _Input(msgspec.Struct, gc=False):
    messages: Union[list[_Message], None] = None


class _ConverseMessage(msgspec.Struct, gc=False):
    content: _Content = None


class _ConverseOutput(msgspec.Struct, gc=False):
    message: Union[_ConverseMessage, None] = None


class _Usage(msgspec.Struct, gc=False):
    input_tokens: _Count = None
    output_tokens: _Count = None
    inputTokens: _Count = None
    outputTokens: _Count = None


class _Output(msgspec.Struct, gc=False):
    content: _Content = None  # Anthropic
    stop_reason: _Str = None
    output: Union[_ConverseOutput, None] = None  # Converse
    stopReason: _Str = None
    usage: Union[_Usage, None] = None


class _Error(msgspec.Struct, gc=False):
    errorCode: Union[int, str, None] = None
    errorMessage: _Str = None


class _Line(msgspec.Struct, gc=False):
    recordId: _Str = None
    modelInput: Union[_Input, None] = None
    modelOutput: Union[_Output, None] = None
    error: Union[_Error, None] = None


LINE_DECODER = msgspec.json.Decoder(_Line)
LENIENT_JSON = json.JSONDecoder(strict=False)  # raw control characters in strings are read, then validated as text


class LineFields(NamedTuple):
    """What one readable line says; `prompt` is the text of its last user message."""

    record_id: str | None
    prompt: str | None
    judge_text: str | None  # the prefill followed by the output text
    output_text: str | None
    stop_reason: str | None
    error: str | None
    input_tokens: int | None
    output_tokens: int | None


# --- one line ------------------------------------------------------------------------------------


def decode_line(raw: bytes) -> LineFields | None:
    """The fields of one line (bytes without its newline), or None when it is not one JSON object."""
    raw = raw[3:] if raw.startswith(BOM) else raw  # a BOM at a line start (files joined with `cat`)
    try:
        return _fields(LINE_DECODER.decode(raw))
    except (msgspec.DecodeError, RecursionError):
        line = _lenient_line(raw)
        return None if line is None else _fields(line)


def _lenient_line(raw: bytes) -> _Line | None:
    """The standard library's reading: invalid UTF-8 and lone surrogate escapes become U+FFFD."""
    try:
        value = LENIENT_JSON.decode(raw.decode("utf-8", "replace"))
        return _line_from_object(valid_unicode(value)) if isinstance(value, dict) else None
    except (ValueError, RecursionError):
        return None


def _line_from_object(obj: dict) -> _Line:
    """The record's fields from a decoded object, each coerced on its own: a value of an unexpected type reads as absent."""
    model_input, output = obj.get("modelInput"), obj.get("modelOutput")
    messages = model_input.get("messages") if isinstance(model_input, dict) else None
    if isinstance(messages, list):
        messages = [_Message(_string(item.get("role")), _blocks(item.get("content"))) for item in messages if isinstance(item, dict)]
    return _Line(
        recordId=_string(obj.get("recordId")),
        modelInput=_Input(messages) if isinstance(messages, list) else None,
        modelOutput=_output_from_object(output) if isinstance(output, dict) else None,
        error=_error_from_object(obj.get("error")),
    )


def _output_from_object(output: dict) -> _Output:
    converse, usage = output.get("output"), output.get("usage")
    message = converse.get("message") if isinstance(converse, dict) else None
    return _Output(
        content=_blocks(output.get("content")),
        stop_reason=_string(output.get("stop_reason")),
        output=_ConverseOutput(_ConverseMessage(_blocks(message.get("content")))) if isinstance(message, dict) else None,
        stopReason=_string(output.get("stopReason")),
        usage=_Usage(*(_count(usage.get(key)) for key in _Usage.__struct_fields__)) if isinstance(usage, dict) else None,
    )


def _error_from_object(error: Any) -> _Error | None:
    if error is None or isinstance(error, dict):
        return None if error is None else _Error(scalar_text(error.get("errorCode")), scalar_text(error.get("errorMessage")))
    return _Error(None, scalar_text(error) or msgspec.json.encode(error).decode())


def _blocks(content: Any) -> str | list[_TextBlock] | None:
    if isinstance(content, str) or not isinstance(content, list):
        return content if isinstance(content, str) else None
    return [_TextBlock(_string(block.get("type")), _string(block.get("text"))) for block in content if isinstance(block, dict)]


def _fields(line: _Line) -> LineFields:
    model_input, output = line.modelInput, line.modelOutput
    prompt, prefill = _prompt(model_input.messages) if model_input is not None else (None, "")
    record_id = line.recordId if line.recordId is not None and line.recordId.strip() else None
    error = None if line.error is None else _error_text(line.error)
    if output is None:
        return LineFields(record_id, prompt, None, None, None, error, None, None)
    text = _output_text(output)
    usage = output.usage or _NO_USAGE
    return LineFields(
        record_id, prompt, None if text is None else prefill + text, text,
        output.stop_reason if output.stop_reason is not None else output.stopReason, error,
        usage.input_tokens if usage.input_tokens is not None else usage.inputTokens,
        usage.output_tokens if usage.output_tokens is not None else usage.outputTokens,
    )


_NO_USAGE = _Usage()


def _error_text(error: _Error) -> str:
    """Bedrock's error as "code: message" (`{"errorCode": 400, "errorMessage": "..."}`)."""
    code, message = error.errorCode, error.errorMessage
    return ": ".join(part for part in (None if code is None else str(code), message) if part is not None)


def _output_text(output: _Output) -> str | None:
    """The judge's text: Anthropic `content`, else Converse `output.message.content`."""
    text = _content_text(output.content)
    if text is None and output.output is not None and output.output.message is not None:
        text = _content_text(output.output.message.content)
    return text


def _content_text(content: str | list | None) -> str | None:
    """A `content` field's text: the string itself, or its text blocks joined ("" when it has none).

    Blocks without a top-level `text` (thinking, redacted_thinking, reasoningContent, images) add nothing.
    """
    if content is None or isinstance(content, str):
        return content
    if len(content) == 1:
        text = _block_text(content[0])
        return "" if text is None else text
    return "".join([text for text in map(_block_text, content) if text is not None])


def _block_text(block: _TextBlock) -> str | None:
    return block.text if block.type is None or block.type == "text" else None


def _prompt(messages: list[_Message] | None) -> tuple[str | None, str]:
    """The text of the last user message, and the prefill (a final assistant message's text, else "")."""
    if not messages:
        return None, ""
    prefill = (_content_text(messages[-1].content) or "") if messages[-1].role == "assistant" else ""
    for message in reversed(messages):
        if message.role == "user":
            return _content_text(message.content), prefill
    return None, prefill


# --- small values ----------------------------------------------------------------------------------

INT64_BOUND = 2**63


def _string(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _count(value: Any) -> int | None:
    """A token count that is an integer (an integral float counts) and fits Int64, else None."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return value if isinstance(value, int) and not isinstance(value, bool) and -INT64_BOUND <= value < INT64_BOUND else None


def scalar_text(value: Any) -> str | None:
    """A JSON scalar as text (`5` -> "5", `4.5` -> "4.5", `true` -> "true"); None for null, lists and objects."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        try:
            return str(value)
        except ValueError:  # an integer beyond Python's digit limit
            return None
    return None


def normal_newlines(text: str) -> str:
    """CRLF and lone CR as LF: text written on Windows reads like any other."""
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


_SURROGATE = re.compile("[\ud800-\udfff]")


def valid_unicode(value: Any) -> Any:
    """Strings with lone surrogates (which the standard library's decoder lets through) with U+FFFD instead."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
            return value
        except UnicodeEncodeError:
            return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [valid_unicode(item) for item in value]
    if isinstance(value, dict):
        return {key: valid_unicode(item) for key, item in value.items()}
    return value
