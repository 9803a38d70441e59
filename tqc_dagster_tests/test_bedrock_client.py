"""ConverseClient through real boto3 against the fake Converse endpoint on 127.0.0.1.

Quota properties are measured from the server's own request log (arrival times, statuses) and the
tokens the fake billed, never from the client's own accounting. A 60-second window of real
traffic is too slow for the suite, so the 60-second property is proven on a simulated clock in
test_bedrock_limiter.py; here the spacing is checked on the server log at a high quota, and the
window itself by shrinking the limiter's window constants (read at run time) to a few seconds, so
whole windows of real traffic pass in a test.
"""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest

from tqc_dagster.bedrock import limiter as limiter_module
from tqc_dagster.bedrock.cache import request_key
from tqc_dagster.bedrock.client import BedrockError, ConverseClient, estimate_input_tokens
from tqc_dagster_tests.bedrock_helpers import (
    DUMMY_ACCESS_KEY,
    DUMMY_SECRET_KEY,
    RecordingFakeBedrock,
    client_kwargs,
    error_answer,
    sliding_max,
    use_dummy_aws,
)
from tqc_dagster_tests.fake_bedrock import Faults

FAST = Faults(latency=(0.005, 0.03))


@pytest.fixture(autouse=True)
def dummy_aws(monkeypatch, tmp_path):
    return use_dummy_aws(monkeypatch, tmp_path)


def shrink_windows(monkeypatch, window: float) -> None:
    """The limiter's window becomes `window` seconds (its quotas then are per `window`). The request margin is
    relative (spacing), the token margin is kept at its real absolute size: it absorbs arrival jitter, which
    does not shrink with the window."""
    margin = limiter_module.TOKEN_WINDOW_S - limiter_module.WINDOW_S
    monkeypatch.setattr(limiter_module, "WINDOW_S", window)
    monkeypatch.setattr(limiter_module, "TOKEN_WINDOW_S", window + margin)


def make_client(fake, tmp_path, **overrides) -> ConverseClient:
    return ConverseClient(**client_kwargs(fake, tmp_path / "cache", **overrides))


def distinct_requests(client: ConverseClient, n: int, size: int = 200, max_tokens: int = 64) -> list[dict]:
    return [client.request([{"role": "user", "content": [{"text": f"request {i}: " + "lorem ipsum " * (size // 12)}]}], system="be brief", max_tokens=max_tokens) for i in range(n)]


def arrivals(fake, status: int | None = None) -> list[float]:
    return [entry.arrived for entry in fake.log if status is None or entry.status == status]


def statuses(fake) -> Counter:
    return Counter(entry.status for entry in fake.log)


# --- the quota, from the server's log ----------------------------------------------------------------------


def test_requests_reach_the_server_evenly_spaced(tmp_path):
    rpm = 1200  # one request per ~50 ms: well above the arrival jitter of threads on a busy machine
    with RecordingFakeBedrock(FAST) as fake:
        client = make_client(fake, tmp_path, requests_per_minute=rpm, max_workers=10)
        answers = client.converse_many(distinct_requests(client, 60))
    assert not [a for a in answers if isinstance(a, Exception)]
    times = sorted(arrivals(fake))
    assert len(times) == 60
    for k in (1, 5, 20, 40):  # a window of k spacings holds at most k requests (+1 for arrival jitter)
        assert sliding_max(times, 60 / rpm * k) <= k + 1, k
    achieved = (len(times) - 1) / (times[-1] - times[0]) * 60
    assert 0.9 * rpm <= achieved <= rpm


@pytest.mark.parametrize("throttle", [0.0, 0.15])
def test_no_sliding_window_of_the_server_log_exceeds_the_request_quota(tmp_path, monkeypatch, throttle):
    """The limiter's window shrunk to 3 s: `requests_per_minute` then is the quota per 3 s; ~2.5 whole windows of real traffic."""
    window, quota = 3.0, 120
    shrink_windows(monkeypatch, window)
    with RecordingFakeBedrock(Faults(throttle=throttle, latency=(0.005, 0.03)), seed=5) as fake:
        client = make_client(fake, tmp_path, requests_per_minute=quota, max_workers=10)
        answers = client.converse_many(distinct_requests(client, 220))
    assert not [a for a in answers if isinstance(a, Exception)]
    times = arrivals(fake)  # every request the server saw, throttled ones included: they count against the quota too
    assert sliding_max(times, window) <= quota
    # and the quota is used (each throttle cools the limiter down a little, by design)
    assert sliding_max(times, window) >= (0.85 if throttle else 0.95) * quota
    if throttle:
        assert statuses(fake)[429] > 0


def test_no_sliding_window_of_the_server_log_exceeds_the_token_quota(tmp_path, monkeypatch):
    """Tokens the binding quota (the window shrunk to 1 s, several whole windows); tokens counted as the server billed them.

    Without a token margin this failed: a reservation left the limiter's window exactly one window after it was
    granted, the requests waiting for it were released at that instant and reached the server sooner after it
    than the old one had (its grant-to-arrival delay was longer), and the server's window held up to ~1.5x the quota."""
    window = 1.0
    shrink_windows(monkeypatch, window)
    with RecordingFakeBedrock(FAST) as fake:
        client = make_client(fake, tmp_path, requests_per_minute=1000, tokens_per_minute=3000, max_workers=8)
        requests = distinct_requests(client, 30, size=1200, max_tokens=10)
        answers = client.converse_many(requests)
    assert not [a for a in answers if isinstance(a, Exception)]
    served = fake.served
    billed = sliding_max([s.arrived for s in served], window, [s.tokens for s in served])
    assert billed <= client.limiter.tokens_per_minute, f"{billed:.0f} tokens billed in one window, quota {client.limiter.tokens_per_minute}"
    assert billed >= 0.5 * client.limiter.tokens_per_minute  # tokens really were the binding quota


# --- throttling, errors, timeouts --------------------------------------------------------------------------


def test_with_15_percent_throttling_every_request_is_answered_once(tmp_path):
    with RecordingFakeBedrock(Faults(throttle=0.15, latency=(0.005, 0.03)), seed=1) as fake:
        client = make_client(fake, tmp_path, max_workers=10)
        requests = distinct_requests(client, 200)
        answers = client.converse_many(requests)
    assert not [a for a in answers if isinstance(a, Exception)]
    seen = statuses(fake)
    assert seen[429] >= 15 and set(seen) == {200, 429}
    usage = client.usage
    assert usage.throttles == seen[429]
    assert usage.retries == seen[429]  # one retry per throttle, nothing else failed
    assert usage.requests == len(fake.log) == 200 + seen[429]
    assert usage.answered == seen[200] == 200
    answered_keys = Counter(s.key for s in fake.served if s.status == 200)
    assert answered_keys == Counter(request_key(r) for r in requests)  # each request answered exactly once
    summary = client.usage.summary()
    assert summary["throttles"] == seen[429] and summary["answered"] == 200


@pytest.mark.parametrize(
    "status, code",
    [(429, "ThrottlingException"), (429, "throttlingException"), (429, "THROTTLINGEXCEPTION"), (400, "throttlingexception")],
)
def test_throttling_is_recognized_by_its_name_in_any_case(tmp_path, status, code):
    def script(number, request):
        return error_answer(status, code, "Too many requests, please wait before trying again.") if number < 3 else None

    with RecordingFakeBedrock(script=script) as fake:
        client = make_client(fake, tmp_path)
        answer = client.converse(distinct_requests(client, 1)[0])
    assert answer["stopReason"] == "end_turn"
    assert [e.status for e in sorted(fake.log, key=lambda e: e.arrived)] == [status] * 3 + [200]
    assert client.usage.throttles == 3 and client.usage.retries == 3 and client.usage.server_errors == 0


def test_a_throttled_request_gives_its_tokens_back(tmp_path):
    """The token quota holds one request per minute: the retry of a throttled request must not wait out the minute."""

    def script(number, request):
        return error_answer(429, "ThrottlingException", "slow down") if number == 0 else None

    with RecordingFakeBedrock(script=script) as fake:
        probe = make_client(fake, tmp_path)
        request = distinct_requests(probe, 1)[0]
        reserve = estimate_input_tokens(request) + request["inferenceConfig"]["maxTokens"]
        client = make_client(fake, tmp_path, tokens_per_minute=reserve + 10, model_id="one-per-minute:0")
        started = time.monotonic()
        client.converse(request)
        took = time.monotonic() - started
    assert took < 5
    assert client.usage.throttles == 1 and client.usage.answered == 1


@pytest.mark.parametrize(
    "status, code, message",
    [
        (400, "ValidationException", "Malformed input request"),
        (403, "AccessDeniedException", "You don't have access to the model with the specified model ID."),
        (404, "ResourceNotFoundException", "Could not resolve the foundation model from the provided model identifier."),
        (403, "UnrecognizedClientException", "The security token included in the request is invalid."),
    ],
)
def test_validation_and_access_errors_fail_fast_with_a_clear_message(tmp_path, status, code, message):
    with RecordingFakeBedrock(script=lambda number, request: error_answer(status, code, message)) as fake:
        client = make_client(fake, tmp_path)
        with pytest.raises(BedrockError) as raised:
            client.converse(distinct_requests(client, 1)[0])
        assert len(fake.log) == 1  # no retry
    assert code in str(raised.value) and f"HTTP {status}" in str(raised.value) and message in str(raised.value)
    assert client.usage.requests == 1 and client.usage.retries == 0


def test_a_rejection_stops_converse_many_at_once(tmp_path):
    """Every request would be rejected alike: the batch raises after about one request per worker, not all 80.
    (600/min: the batch is cancelled well before the limiter lets the next request go.)"""
    with RecordingFakeBedrock(Faults(validation_error=True)) as fake:
        client = make_client(fake, tmp_path, max_workers=4, requests_per_minute=600, model_id="rejecting:0")
        with pytest.raises(BedrockError, match=r"ValidationException, HTTP 400\): Malformed input request"):
            client.converse_many(distinct_requests(client, 80))
        time.sleep(0.2)
        assert 1 <= len(fake.log) <= 2 * client.max_workers
    assert client.usage.retries == 0


def test_server_errors_are_retried(tmp_path):
    answers_by_number = {0: (503, "ServiceUnavailableException"), 1: (500, "InternalServerException"), 2: (429, "ModelNotReadyException")}

    def script(number, request):
        if number in answers_by_number:
            return error_answer(*answers_by_number[number], "try again")
        return None

    with RecordingFakeBedrock(script=script) as fake:
        client = make_client(fake, tmp_path)
        client.converse(distinct_requests(client, 1)[0])
    assert [e.status for e in sorted(fake.log, key=lambda e: e.arrived)] == [503, 500, 429, 200]
    assert client.usage.server_errors == 3 and client.usage.retries == 3 and client.usage.answered == 1


def test_injected_503s_are_retried_until_every_request_is_answered(tmp_path):
    with RecordingFakeBedrock(Faults(server_error=0.2, latency=(0.005, 0.02)), seed=2) as fake:
        client = make_client(fake, tmp_path)
        answers = client.converse_many(distinct_requests(client, 60))
    assert not [a for a in answers if isinstance(a, Exception)]
    assert client.usage.server_errors == statuses(fake)[503] > 0
    assert client.usage.answered == 60


def test_a_read_timeout_is_retried(tmp_path):
    def script(number, request):
        if number == 0:
            time.sleep(1.0)  # longer than timeout_s: the client hangs up
        return None

    with RecordingFakeBedrock(script=script) as fake:
        client = make_client(fake, tmp_path, timeout_s=0.3)
        answer = client.converse(distinct_requests(client, 1)[0])
        time.sleep(0.8)  # let the abandoned handler finish
    assert answer["stopReason"] == "end_turn"
    assert client.usage.timeouts == 1 and client.usage.retries == 1 and client.usage.answered == 1
    assert len(fake.log) == 2


def test_a_request_larger_than_the_token_quota_fails_before_it_is_sent(tmp_path):
    with RecordingFakeBedrock() as fake:
        client = make_client(fake, tmp_path, tokens_per_minute=1000, model_id="tiny-quota:0")
        with pytest.raises(ValueError, match="can never fit a quota of 1000 tokens/min"):
            client.converse(distinct_requests(client, 1, max_tokens=2048)[0])
        assert fake.log == []


def test_attempts_run_out_with_a_clear_error(tmp_path):
    with RecordingFakeBedrock(Faults(throttle=1.0)) as fake:
        client = make_client(fake, tmp_path, max_attempts=3)
        with pytest.raises(BedrockError, match="after 3 attempts"):
            client.converse(distinct_requests(client, 1)[0])
    assert len(fake.log) == 3 and client.usage.throttles == 3 and client.usage.answered == 0


def test_timed_out_requests_still_count_against_the_token_quota(tmp_path, monkeypatch):
    """The server received and billed a request the client gave up on: its tokens must stay reserved
    (they used to be given back, and retries of slow requests went past the token quota)."""
    window = 2.0
    shrink_windows(monkeypatch, window)

    def script(number, request):
        time.sleep(0.5)  # every answer slower than timeout_s
        return None

    with RecordingFakeBedrock(script=script) as fake:
        probe = make_client(fake, tmp_path)
        request = distinct_requests(probe, 1, size=1200, max_tokens=10)[0]
        reserve = estimate_input_tokens(request) + 10
        client = make_client(fake, tmp_path, timeout_s=0.2, max_attempts=3, tokens_per_minute=2 * reserve + 10, model_id="slow:0")
        with pytest.raises(BedrockError):
            client.converse(request)
        time.sleep(0.7)  # the server finishes (and bills) the abandoned requests
    served = [s for s in fake.served if s.status == 200]
    assert len(served) == 3 and client.usage.timeouts == 3
    billed = sliding_max([s.arrived for s in served], window, [s.tokens for s in served])
    assert billed <= client.limiter.tokens_per_minute, f"{billed:.0f} tokens billed in one window, quota {client.limiter.tokens_per_minute}"


# --- the cache ---------------------------------------------------------------------------------------------


def test_a_second_identical_run_makes_no_request(tmp_path):
    with RecordingFakeBedrock(Faults(throttle=0.1, latency=(0.005, 0.02))) as fake:
        first = make_client(fake, tmp_path)
        requests = distinct_requests(first, 30)
        answers = first.converse_many(requests)
        sent = len(fake.log)
        second = make_client(fake, tmp_path)
        again = second.converse_many(requests)
        assert len(fake.log) == sent  # zero requests
    assert again == answers
    assert second.usage.cache_hits == 30 and second.usage.requests == 0 and second.usage.answered == 0
    assert all("ResponseMetadata" not in answer for answer in answers)  # request ids and headers are not cached


def test_anything_that_shapes_the_answer_changes_the_cache_key(tmp_path):
    with RecordingFakeBedrock(FAST) as fake:
        client = make_client(fake, tmp_path)
        base = distinct_requests(client, 1)[0]
        variants = [
            base,
            {**base, "inferenceConfig": {**base["inferenceConfig"], "temperature": 0.2}},
            {**base, "inferenceConfig": {**base["inferenceConfig"], "maxTokens": 65}},
            {**base, "system": [{"text": "be verbose"}]},
            {**base, "modelId": "anthropic.claude-other:0"},
        ]
        for variant in variants:
            client.converse(variant)
        client.converse(dict(reversed(list(base.items()))))  # same content, other key order: a hit
    assert len(fake.log) == len(variants)
    assert client.usage.cache_hits == 1


# --- nothing secret in what a run reports ------------------------------------------------------------------


def test_usage_logs_errors_and_cache_hold_no_credentials(tmp_path):
    messages: list[str] = []

    def script(number, request):
        text = request["messages"][0]["content"][0]["text"]
        if text.startswith("reject me"):
            return error_answer(400, "ValidationException", "Malformed input request")
        if text.startswith("unavailable"):
            return error_answer(503, "ServiceUnavailableException", "Service unavailable")
        return None

    with RecordingFakeBedrock(Faults(throttle=0.1), script=script, seed=4) as fake:
        client = make_client(fake, tmp_path, log=messages.append)
        assert not [a for a in client.converse_many(distinct_requests(client, 12)) if isinstance(a, Exception)]
        errors = []
        for text in ("reject me", "unavailable"):
            with pytest.raises(BedrockError) as raised:
                client.converse(client.request([{"role": "user", "content": [{"text": text}]}]))
            errors.append(str(raised.value))
    summary = client.usage.summary()
    cached = [path.read_text() for path in (tmp_path / "cache").rglob("*.json")]
    assert len(cached) == 12
    reported = [json.dumps(summary), repr(client.usage), client.progress(12, 12), *messages, *errors, *cached]
    for secret in (DUMMY_SECRET_KEY, DUMMY_ACCESS_KEY):
        assert not [text for text in reported if secret in text]
    assert "lorem ipsum" not in json.dumps(summary) + repr(client.usage)  # no request text either
    assert set(summary) == {"requests", "answered", "retries", "throttles", "server_errors", "timeouts", "cache_hits",
                            "input_tokens", "output_tokens", "achieved_requests_per_minute"}
    assert messages and "12/12 requests done" in messages[-1]
