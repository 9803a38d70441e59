"""ConverseClient through real boto3 against the fake Converse endpoint on 127.0.0.1.

Quota properties are measured from the server's own request log (arrival times, statuses) and the
tokens the fake billed, never from the client's own accounting. They run on simulated time
(VirtualTime, bedrock_helpers): the client's limiter and backoff sleeps and the fake's arrival
stamps share one clock that moves on only when every request thread waits, so whole 60-second
windows pass in a test and no verdict depends on how loaded the machine is. The fake adds a
modeled network delay to each arrival, which the limiter's margins must absorb. Retry, timeout and
cancellation tests synchronize on what the fake server did (its log, requests it holds), never on
sleeps; their waits are bounded only so that a hang fails.
"""

from __future__ import annotations

import json
import threading
from collections import Counter

import pytest

from tqc_dagster.bedrock.cache import request_key
from tqc_dagster.bedrock.client import BedrockError, ConverseClient, estimate_input_tokens
from tqc_dagster.bedrock.limiter import SPACING_MARGIN, WINDOW_S
from tqc_dagster_tests.bedrock_helpers import (
    DUMMY_ACCESS_KEY,
    DUMMY_SECRET_KEY,
    HANG_GUARD_S,
    RecordingFakeBedrock,
    VirtualTime,
    bedrock_pool_threads,
    client_kwargs,
    error_answer,
    sliding_max,
    use_dummy_aws,
    virtual_client,
)
from tqc_dagster_tests.fake_bedrock import Faults

FAST = Faults(latency=(0.005, 0.03))
NETWORK_DELAY = (0.0, 0.5)  # s from the limiter letting a request go to the server receiving it; the margins (1 % of a minute) absorb it


@pytest.fixture(autouse=True)
def dummy_aws(monkeypatch, tmp_path):
    return use_dummy_aws(monkeypatch, tmp_path)


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
    rpm = 1200
    spacing = WINDOW_S / rpm * (1 + SPACING_MARGIN)
    time = VirtualTime()
    with RecordingFakeBedrock(clock=time) as fake:
        client = virtual_client(fake, tmp_path / "cache", time, requests_per_minute=rpm, max_workers=10)
        answers = client.converse_many(distinct_requests(client, 60))
    assert not [a for a in answers if isinstance(a, Exception)]
    times = sorted(arrivals(fake))
    assert len(times) == 60
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert min(gaps) >= spacing * (1 - 1e-9)
    assert max(gaps) == pytest.approx(spacing)  # the quota is used: no request waits longer than it must
    for k in (1, 5, 20, 40):  # a window of k spacings holds at most k requests
        assert sliding_max(times, WINDOW_S / rpm * k) <= k, k


@pytest.mark.parametrize("throttle", [0.0, 0.15])
def test_no_sliding_window_of_the_server_log_exceeds_the_request_quota(tmp_path, throttle):
    """~1.8 whole 60-second windows of simulated traffic, each arrival up to 0.5 s late (the modeled network delay)."""
    quota = 120
    time = VirtualTime()
    with RecordingFakeBedrock(Faults(throttle=throttle), seed=5, clock=time, network_delay=NETWORK_DELAY) as fake:
        client = virtual_client(fake, tmp_path / "cache", time, requests_per_minute=quota, max_workers=10)
        answers = client.converse_many(distinct_requests(client, 220))
    assert not [a for a in answers if isinstance(a, Exception)]
    times = arrivals(fake)  # every request the server saw, throttled ones included: they count against the quota too
    assert sliding_max(times, WINDOW_S) <= quota
    # and the quota is used (each throttle cools the limiter down a little, by design)
    assert sliding_max(times, WINDOW_S) >= (0.85 if throttle else 0.95) * quota
    if throttle:
        assert statuses(fake)[429] > 0


def test_no_sliding_window_of_the_server_log_exceeds_the_token_quota(tmp_path):
    """Tokens the binding quota (several whole windows of simulated traffic); tokens counted as the server billed them.

    Without a token margin this failed: a reservation left the limiter's window exactly one minute after it was
    granted, the requests waiting for it were released at that instant and reached the server sooner after it
    than the old one had (its grant-to-arrival delay was longer), and the server's window held more than the
    quota. The fake's modeled network delay (up to 0.5 s per arrival) recreates that here."""
    time = VirtualTime()
    with RecordingFakeBedrock(clock=time, network_delay=NETWORK_DELAY) as fake:
        client = virtual_client(fake, tmp_path / "cache", time, requests_per_minute=1000, tokens_per_minute=3000, max_workers=8)
        requests = distinct_requests(client, 30, size=1200, max_tokens=10)
        answers = client.converse_many(requests)
    assert not [a for a in answers if isinstance(a, Exception)]
    served = fake.served
    billed = sliding_max([s.arrived for s in served], WINDOW_S, [s.tokens for s in served])
    assert billed <= client.limiter.tokens_per_minute, f"{billed:.0f} tokens billed in one window, quota {client.limiter.tokens_per_minute}"
    assert billed >= 0.5 * client.limiter.tokens_per_minute  # tokens really were the binding quota
    assert max(s.arrived for s in served) - min(s.arrived for s in served) > 2 * WINDOW_S  # whole windows passed


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

    time = VirtualTime()
    with RecordingFakeBedrock(script=script, clock=time) as fake:
        probe = make_client(fake, tmp_path)
        request = distinct_requests(probe, 1)[0]
        reserve = estimate_input_tokens(request) + request["inferenceConfig"]["maxTokens"]
        client = virtual_client(fake, tmp_path / "cache", time, tokens_per_minute=reserve + 10)
        client.converse(request)
    throttled, retry = sorted(arrivals(fake))
    assert retry - throttled <= client.limiter.spacing + client.backoff_cap_s  # simulated seconds: not the minute of the token window
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
    """Every request would be rejected alike: the batch raises on the first rejection, not after all 80. The first
    request (the one the batch waits for first) is rejected at once; every other one is held on the server until
    the batch has raised, so only the requests already taken by a worker reach the server: the other workers' and
    at most one more, taken by the first one's worker before the batch raised."""
    raised = threading.Event()

    def script(number, request):
        if not request["messages"][0]["content"][0]["text"].startswith("request 0:"):
            raised.wait(HANG_GUARD_S)
        return error_answer(400, "ValidationException", "Malformed input request")

    with RecordingFakeBedrock(script=script) as fake:
        client = make_client(fake, tmp_path, max_workers=4, model_id="rejecting:0")
        before = bedrock_pool_threads()
        try:
            with pytest.raises(BedrockError, match=r"ValidationException, HTTP 400\): Malformed input request"):
                client.converse_many(distinct_requests(client, 80))
        finally:
            raised.set()
        workers = bedrock_pool_threads() - before
        for worker in workers:  # every request the batch will ever send is sent (and logged) once its workers have ended
            worker.join(HANG_GUARD_S)
        assert workers and not [worker for worker in workers if worker.is_alive()]
        assert 1 <= len(fake.log) <= client.max_workers + 1
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
    """The first request is answered only after the client has hung up, so its read times out however slow the
    machine is. (Should a retry time out too, on a very slow machine, it is retried alike: the counts say so.)"""
    hung_up = []

    def script(number, request):
        if number == 0:
            hung_up.append(fake.client_hung_up())

    with RecordingFakeBedrock(script=script) as fake:
        client = make_client(fake, tmp_path, timeout_s=0.5)
        answer = client.converse(distinct_requests(client, 1)[0])
        assert fake.wait_for(lambda: len(fake.log) == client.usage.requests and fake.in_progress == 0)  # the abandoned one finished too
    assert answer["stopReason"] == "end_turn"
    assert hung_up == [True]
    usage = client.usage
    assert usage.timeouts >= 1 and usage.retries == usage.timeouts and usage.answered == 1
    assert len(fake.log) == usage.requests == usage.timeouts + 1
    assert [entry.status for entry in fake.log] == [200] * len(fake.log)  # the server did answer (and bill) the abandoned request


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


def test_timed_out_requests_still_count_against_the_token_quota(tmp_path):
    """The server received and billed a request the client gave up on: its tokens must stay reserved
    (they used to be given back, and retries of slow requests went past the token quota). Every answer
    comes only after the client has hung up; the quota holds two requests a minute (simulated time)."""

    def script(number, request):
        fake.client_hung_up()

    time = VirtualTime()
    with RecordingFakeBedrock(script=script, clock=time) as fake:
        probe = make_client(fake, tmp_path)
        request = distinct_requests(probe, 1, size=1200, max_tokens=10)[0]
        reserve = estimate_input_tokens(request) + 10
        client = virtual_client(fake, tmp_path / "cache", time, timeout_s=0.2, max_attempts=3, tokens_per_minute=2 * reserve + 10)
        with pytest.raises(BedrockError):
            client.converse(request)
        assert fake.wait_for(lambda: len(fake.served) == 3 and fake.in_progress == 0)  # the server finishes (and bills) the abandoned requests
    served = [s for s in fake.served if s.status == 200]
    assert len(served) == 3 and client.usage.timeouts == 3
    billed = sliding_max([s.arrived for s in served], WINDOW_S, [s.tokens for s in served])
    assert billed <= client.limiter.tokens_per_minute, f"{billed:.0f} tokens billed in one window, quota {client.limiter.tokens_per_minute}"
    assert sum(s.tokens for s in served) > client.limiter.tokens_per_minute  # all three in one window would have been too many


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
    assert set(summary) == {"requests", "answered", "retries", "throttles", "server_errors", "timeouts", "cache_hits", "not_cached",
                            "input_tokens", "output_tokens", "achieved_requests_per_minute"}
    assert messages and "12/12 requests done" in messages[-1]
