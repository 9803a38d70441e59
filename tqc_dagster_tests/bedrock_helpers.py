"""Helpers for the Bedrock tests and the throughput benchmark (a test module imports them; nothing here is a test).

`RecordingFakeBedrock` is the fake Converse endpoint plus a second, richer log: per request its
arrival time, its cache key (the same `request_key` the client computes, rebuilt from the body
boto3 sent), its status, the tokens the fake billed and what kind of answer it got. A `script`
can replace the answer of chosen requests (e.g. a lower-case `throttlingException`).

`sliding_max` counts events in the fullest half-open window [t, t + width) of a log.
"""

from __future__ import annotations

import bisect
import json
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tqc_dagster.bedrock.cache import request_key
from tqc_dagster_tests.fake_bedrock import REQUEST_SPEC, FakeBedrock

# Dummy credentials only; tests must never see real ones. The markers are unusual so a leak is easy to find.
DUMMY_ACCESS_KEY = "AKIATESTDUMMYKEY0001"
DUMMY_SECRET_KEY = "dummy-secret-7f3c9a1e-never-log-me"
DUMMY_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": DUMMY_ACCESS_KEY,
    "AWS_SECRET_ACCESS_KEY": DUMMY_SECRET_KEY,
    "AWS_DEFAULT_REGION": "us-west-2",
    "AWS_EC2_METADATA_DISABLED": "true",
}
UNSET_AWS_ENV = ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_ENDPOINT_URL",
                 "AWS_ENDPOINT_URL_BEDROCK_RUNTIME")


def use_dummy_aws(monkeypatch, tmp_path: Path) -> dict:
    """Dummy credentials, no profile files, no instance metadata: boto3 can only sign with the dummy key."""
    for name in UNSET_AWS_ENV:
        monkeypatch.delenv(name, raising=False)
    env = {**DUMMY_AWS_ENV, "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials")}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@dataclass
class Served:
    arrived: float
    key: str
    status: int
    tokens: int  # input + output tokens the fake billed (0 for an error answer)
    kind: str  # ok | malformed | wrong_bucket | throttled | server_error | validation | scripted
    prompt: str  # the text of the messages
    system: str  # the text of the system blocks


@dataclass
class RecordingFakeBedrock(FakeBedrock):
    script: Callable[[int, dict], tuple[int, dict, dict] | None] | None = None
    served: list[Served] = field(default_factory=list)

    def __post_init__(self):
        super().__post_init__()
        self._served_lock = threading.Lock()
        self._count = 0
        default_handle_error = self._server.handle_error

        def handle_error(request, client_address):  # a client that timed out and hung up is expected, not news
            if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
                default_handle_error(request, client_address)

        self._server.handle_error = handle_error

    def respond(self, model_id: str, body: bytes) -> tuple[int, dict, dict]:
        arrived = time.monotonic()
        request = json.loads(body)
        with self._served_lock:
            number = self._count
            self._count += 1
        answer = self.script(number, request) if self.script else None
        if answer is None:
            answer = super().respond(model_id, body)
            kind = classify_answer(request, *answer)
        else:
            kind = "scripted"
        status, _, payload = answer
        usage = payload.get("usage", {}) if status == 200 else {}
        prompt = "".join(block.get("text", "") for message in request.get("messages", []) for block in message.get("content", []))
        system = "".join(block.get("text", "") for block in request.get("system", []))
        tokens = usage.get("inputTokens", 0) + usage.get("outputTokens", 0)
        with self._served_lock:
            self.served.append(Served(arrived, request_key({"modelId": model_id, **request}), status, tokens, kind, prompt, system))
        return answer


def classify_answer(request: dict, status: int, headers: dict, payload: dict) -> str:
    if status == 429:
        return "throttled"
    if status >= 500:
        return "server_error"
    if status != 200:
        return "validation"
    text = "".join(block.get("text", "") for block in payload["output"]["message"]["content"])
    try:
        samples = json.loads(text)
    except json.JSONDecodeError:
        return "malformed"
    prompt = "".join(block.get("text", "") for message in request["messages"] for block in message["content"])
    match = REQUEST_SPEC.search(prompt)
    if samples and match:
        bucket = json.loads(match.group(1))["score_range"][0]
        if int(min(samples[0]["scores"])) != bucket:
            return "wrong_bucket"
    return "ok"


def error_answer(status: int, code: str, message: str) -> tuple[int, dict, dict]:
    """An error answer in the Converse wire format (botocore reads the code from x-amzn-ErrorType)."""
    return status, {"x-amzn-ErrorType": f"{code}:http://internal.amazon.com/coral/com.amazon.bedrock/"}, {"message": message}


def sliding_max(times: Sequence[float], width: float, weights: Sequence[float] | None = None) -> float:
    """The largest count (or sum of weights) of events in any half-open window [t, t + width)."""
    order = sorted(range(len(times)), key=lambda i: times[i])
    ts = [times[i] for i in order]
    ws = [1.0 if weights is None else weights[i] for i in order]
    prefix = [0.0]
    for w in ws:
        prefix.append(prefix[-1] + w)
    best = 0.0
    for i, t in enumerate(ts):  # the fullest window can always be moved to start at an event
        j = bisect.bisect_left(ts, t + width, lo=i)
        best = max(best, prefix[j] - prefix[i])
    return best


def client_kwargs(fake: FakeBedrock, cache_dir: Path | str, **overrides) -> dict:
    """ConverseClient arguments for fast tests against `fake` (override any of them)."""
    return {
        "region": "us-west-2",
        "model_id": "anthropic.claude-test:0",
        "requests_per_minute": 6000,
        "tokens_per_minute": 50_000_000,
        "max_workers": 8,
        "max_attempts": 8,
        "timeout_s": 5.0,
        "cache_dir": str(cache_dir),
        "endpoint_url": fake.url,
        "backoff_base_s": 0.02,
        "backoff_cap_s": 0.2,
        "throttle_cooldown_s": 0.02,
        **overrides,
    }
