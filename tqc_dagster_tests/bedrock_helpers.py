"""Helpers for the Bedrock tests and the throughput benchmark (a test module imports them; nothing here is a test).

`RecordingFakeBedrock` is the fake Converse endpoint plus a second, richer log: per request its
arrival time, its cache key (the same `request_key` the client computes, rebuilt from the body
boto3 sent), its status, the tokens the fake billed, what kind of answer it got and the client's
User-Agent. A `script` can replace the answer of chosen requests (e.g. a lower-case
`throttlingException`), or hold them (it runs in the handler thread).

`VirtualTime` is simulated time for real threads: a limiter, the client's backoff sleeps and the
fake's arrival stamps on it (`virtual_client`) make quota verdicts exact however loaded the machine.

`sliding_max` counts events in the fullest half-open window [t, t + width) of a log.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import json
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from tqc_dagster.bedrock.cache import request_key
from tqc_dagster.bedrock.client import ConverseClient
from tqc_dagster.bedrock.limiter import RateLimiter
from tqc_dagster_tests.fake_bedrock import HANG_GUARD_S, JUDGED_TRANSLATION, REQUEST_SPEC, FakeBedrock, prompt_text

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
                 "AWS_ENDPOINT_URL_BEDROCK_RUNTIME", "AWS_SDK_UA_APP_ID")


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
    user_agent: str = ""  # the client's User-Agent header (AWS_SDK_UA_APP_ID shows in it as app/<id>)


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
        arrived, user_agent = self._current.arrived, self._current.handler.headers.get("User-Agent", "")
        request = json.loads(body)
        with self._served_lock:
            number = self._count
            self._count += 1
        answer = self.script(number, request) if self.script else None
        prompt = prompt_text(request)
        if answer is None:
            answer = super().respond(model_id, body)
            kind = classify_answer(request, *answer)
            if answer[0] == 200 and JUDGED_TRANSLATION.search(prompt):
                kind = f"judge_{self.judge_verdict(prompt)}"  # agree | disagree | unreadable
        else:
            kind = "scripted"
        status, _, payload = answer
        usage = payload.get("usage", {}) if status == 200 else {}
        system = "".join(block.get("text", "") for block in request.get("system", []))
        tokens = usage.get("inputTokens", 0) + usage.get("outputTokens", 0)
        with self._served_lock:
            self.served.append(Served(arrived, request_key({"modelId": model_id, **request}), status, tokens, kind, prompt, system, user_agent))
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
    match = REQUEST_SPEC.search(prompt_text(request))
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
        "timeout_s": HANG_GUARD_S,  # only a hang times out; tests of timeouts set their own
        "cache_dir": str(cache_dir),
        "endpoint_url": fake.url,
        "backoff_base_s": 0.02,
        "backoff_cap_s": 0.2,
        **overrides,
    }


def virtual_client(fake: FakeBedrock, cache_dir: Path | str, time: VirtualTime, **overrides) -> ConverseClient:
    """A client for `fake` on simulated time: a limiter of its own on `time` (the quotas of client_kwargs and
    `overrides`), backoff sleeps on `time`, and every converse call a participant, so time stands still while a
    request is in flight: `fake` (constructed with `clock=time`) stamps it with the instant the limiter let it go,
    plus the fake's modeled network delay."""
    kwargs = client_kwargs(fake, cache_dir, **overrides)
    limiter = RateLimiter(kwargs["requests_per_minute"], kwargs["tokens_per_minute"], clock=time, condition=time.condition())
    client = ConverseClient(**kwargs, sleep=time.sleep, limiter=limiter)
    converse = client.converse

    def participating(request: dict, accept=None) -> dict:
        with time.participant():
            return converse(request, accept)

    client.converse = participating  # converse_many's threads call it too
    return client


def bedrock_pool_threads() -> set[threading.Thread]:
    """The live worker threads of ConverseClient.converse_many pools (thread_name_prefix "bedrock")."""
    return {thread for thread in threading.enumerate() if thread.name.startswith("bedrock_")}


# --- simulated time for real threads ------------------------------------------------------------------------


class VirtualTime:
    """Simulated time shared by real threads: a clock (call it), Conditions for RateLimiters (`condition()`) and a
    `sleep`, for tests whose verdict must not depend on how fast the machine runs them.

    Time stands still while any participant thread (`with time.participant():`) runs. When every participant
    waits, in a limiter's Condition or in `sleep`, time jumps to the earliest deadline (or to an action scheduled
    with `at`, if that comes first) and the waiters due then wake. A notify wakes every waiter of its Condition at
    once, as a real Condition's does. A thread that is not a participant never holds time back (alone, its waits
    pass at once). No real time is waited for: a wait that real time ends (HANG_GUARD_S) raises, so a hang fails.
    """

    def __init__(self, start: float = 1000.0):
        self.now = start
        self.waits = 0
        self._lock = threading.Condition(threading.RLock())  # reentrant: a scheduled action may call into a limiter
        self._participants: Counter[int] = Counter()  # thread id -> nesting depth
        self._waiting: dict[int, tuple[float, object]] = {}  # thread id -> (deadline, the Condition waited on, or None)
        self._actions: list = []
        self._sequence = itertools.count()

    def __call__(self) -> float:
        return self.now

    def condition(self) -> VirtualCondition:
        """A Condition on this time, for one RateLimiter (`RateLimiter(..., clock=time, condition=time.condition())`)."""
        return VirtualCondition(self)

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self._wait(seconds, None)

    @contextmanager
    def participant(self) -> Iterator[None]:
        """While the calling thread is inside, time moves on only when it waits."""
        me = threading.get_ident()
        with self._lock:
            self._participants[me] += 1
        try:
            yield
        finally:
            with self._lock:
                self._participants[me] -= 1
                if not self._participants[me]:
                    del self._participants[me]
                self._advance()

    def at(self, when: float, action: Callable[[], object]) -> None:
        """Run `action` (in whichever thread moves time on) when time reaches `when`."""
        with self._lock:
            heapq.heappush(self._actions, (when, next(self._sequence), action))

    def advance(self, seconds: float) -> None:
        """Move time on by hand (a participant driving a test); waiters due by then wake."""
        with self._lock:
            self.now += seconds
            self._advance()

    def wait_for_waiters(self, n: int, timeout: float = HANG_GUARD_S) -> bool:
        """Block (in real time, bounded) until `n` threads wait on this time."""
        with self._lock:
            return self._lock.wait_for(lambda: len(self._waiting) >= n, timeout)

    def _wait(self, seconds: float, on: object) -> None:
        """With the lock held: wait until time reaches now + seconds, or (if `on` is a Condition) a notify of it."""
        me = threading.get_ident()
        self.waits += 1
        self._waiting[me] = (self.now + max(seconds, 0.0), on)
        self._lock.notify_all()  # for wait_for_waiters
        self._advance()
        while me in self._waiting:
            if not self._lock.wait(HANG_GUARD_S):
                del self._waiting[me]
                raise AssertionError(f"simulated time stood still for {HANG_GUARD_S:g} s of real time: a participant neither waited nor ended")

    def _notify(self, on: object) -> None:
        woken = [thread for thread, (_, condition) in self._waiting.items() if condition is on]
        for thread in woken:
            del self._waiting[thread]
        if woken:
            self._lock.notify_all()

    def _advance(self) -> None:
        """With the lock held: wake the waiters due; while every participant (still) waits, move time on."""
        while True:
            due = [thread for thread, (deadline, _) in self._waiting.items() if deadline <= self.now]
            for thread in due:
                del self._waiting[thread]
            if due:
                self._lock.notify_all()
            if not self._waiting or any(thread not in self._waiting for thread in self._participants):
                return  # a participant runs (or was just woken): time waits for it
            earliest = min(deadline for deadline, _ in self._waiting.values())
            if self._actions and self._actions[0][0] <= earliest:
                when, _, action = heapq.heappop(self._actions)
                self.now = max(self.now, when)
                action()  # it may notify waiters
            else:
                self.now = earliest


class VirtualCondition:
    """What a RateLimiter needs of a Condition (with, wait, notify_all), on a VirtualTime."""

    def __init__(self, time: VirtualTime):
        self._time = time

    def __enter__(self) -> Self:
        self._time._lock.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self._time._lock.release()

    def wait(self, timeout: float | None = None) -> bool:
        assert timeout is not None and timeout > 0, "the limiter must always wait with a positive timeout"
        self._time._wait(timeout, self)
        return True

    def notify_all(self) -> None:
        self._time._notify(self)

    notify = notify_all
