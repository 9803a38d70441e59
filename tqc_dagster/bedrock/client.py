"""The Converse client: quota-aware, retrying, cached, accounted.

Only an answer its caller accepts is cached (`accept`): a malformed or useless answer is paid
for once and never replayed by a rerun.

botocore's own retries are off so that every attempt passes through the limiter: a throttled
request gives its tokens back, widens the limiter's spacing (limiter.py: additive increase,
multiplicative decrease of the rate), and waits a full-jitter exponential backoff before trying
again while the other workers go on. Validation and access errors fail at once with a clear
message.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields

import boto3
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from tqc_dagster.bedrock.cache import ResponseCache, request_key
from tqc_dagster.bedrock.limiter import RateLimiter, shared_limiter
from tqc_dagster.config import Bedrock

RETRYABLE_ERRORS = {"throttlingexception", "serviceunavailableexception", "modelnotreadyexception", "internalserverexception", "modeltimeoutexception"}
THROTTLING = "throttlingexception"
NEVER_ARRIVED = (ConnectTimeoutError, EndpointConnectionError)  # the server never saw the request
MAY_HAVE_ARRIVED = (ReadTimeoutError, ConnectionClosedError)  # the server may have processed (and billed) it
BYTES_PER_TOKEN = 3  # conservative: ~4 bytes per English token, 3 per CJK character
PROGRESS_EVERY_S = 10.0

Accept = Callable[[dict], bool]  # whether an answer is worth caching


class BedrockError(RuntimeError):
    """A request that cannot succeed (validation, access) or ran out of attempts."""


class BedrockRejected(BedrockError):
    """Bedrock refused the request itself (validation, access): retrying cannot help, so the run stops."""


class BedrockUnavailable(BedrockError):
    """Still throttled or unavailable after every attempt: this request fails, the others go on."""


@dataclass
class Usage:
    """What a run asked of Bedrock; safe to report (no request text, no credentials)."""

    requests: int = 0
    answered: int = 0
    retries: int = 0
    throttles: int = 0
    server_errors: int = 0
    timeouts: int = 0
    cache_hits: int = 0
    not_cached: int = 0  # answers the caller did not accept (malformed, or nothing usable in them)
    input_tokens: int = 0
    output_tokens: int = 0
    first_request_at: float | None = None
    last_answer_at: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **increments: int) -> None:
        with self._lock:
            for name, value in increments.items():
                setattr(self, name, getattr(self, name) + value)

    def stamp(self, name: str) -> None:
        with self._lock:
            now = time.monotonic()
            if name == "first_request_at" and self.first_request_at is not None:
                return
            setattr(self, name, now)

    @property
    def requests_per_minute(self) -> float:
        if self.first_request_at is None or self.last_answer_at is None or self.last_answer_at <= self.first_request_at:
            return 0.0
        return self.requests * 60.0 / (self.last_answer_at - self.first_request_at)

    def summary(self, price=None) -> dict:
        """Counts, achieved rate and, with a price (USD per million `input` / `output` tokens), the cost."""
        numbers = {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_") and not f.name.endswith("_at")}
        numbers["achieved_requests_per_minute"] = round(self.requests_per_minute, 2)
        if price is not None:
            numbers["estimated_cost_usd"] = round(price.cost(self.input_tokens, self.output_tokens), 4)
        return numbers


def estimate_input_tokens(request: dict) -> int:
    text = "".join(block.get("text", "") for message in request.get("messages", []) for block in message.get("content", []))
    text += "".join(block.get("text", "") for block in request.get("system", []))
    return math.ceil(len(text.encode("utf-8")) / BYTES_PER_TOKEN)


class ConverseClient:
    def __init__(
        self,
        *,
        region: str,
        model_id: str,
        requests_per_minute: float,
        tokens_per_minute: int,
        max_workers: int,
        max_attempts: int,
        timeout_s: float,
        cache_dir: str,
        endpoint_url: str | None = None,
        backoff_base_s: float = 1.0,
        backoff_cap_s: float = 60.0,
        log: Callable[[str], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        limiter: RateLimiter | None = None,
    ):
        """`sleep` waits out the backoff between attempts; `limiter` defaults to the process-wide one of this
        quota (region, endpoint, model). Both are injectable so tests can run the client on simulated time."""
        self.model_id = model_id
        self.max_workers = max_workers
        self.max_attempts = max_attempts
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self.limiter = limiter if limiter is not None else shared_limiter((region, endpoint_url, model_id), requests_per_minute, tokens_per_minute)
        self.cache = ResponseCache(cache_dir)
        self.usage = Usage()
        self._log = log or (lambda message: None)
        self._jitter = random.Random()
        self._sleep = sleep
        self._client = boto3.session.Session().client(
            "bedrock-runtime",
            region_name=region,
            endpoint_url=endpoint_url,
            config=Config(
                retries={"total_max_attempts": 1},
                read_timeout=timeout_s,
                connect_timeout=min(timeout_s, 10),
                max_pool_connections=max_workers,
            ),
        )

    @classmethod
    def from_settings(cls, settings: Bedrock, model_id: str | None = None, log: Callable[[str], None] | None = None) -> ConverseClient:
        """The client the `bedrock` key of tqc.yaml describes, for `model_id` (default: settings.model_id)."""
        return cls(
            region=settings.region,
            model_id=model_id or settings.model_id,
            requests_per_minute=settings.requests_per_minute,
            tokens_per_minute=settings.tokens_per_minute,
            max_workers=settings.max_workers,
            max_attempts=settings.max_attempts,
            timeout_s=settings.timeout_s,
            endpoint_url=settings.endpoint_url,
            cache_dir=settings.cache_dir,
            log=log,
        )

    def request(self, messages: list[dict], system: str | None = None, max_tokens: int = 2048, temperature: float = 0.7, stop_sequences: list[str] | None = None) -> dict:
        """A Converse request body for this client's model (`stop_sequences`: the texts that end the answer)."""
        body = {"modelId": self.model_id, "messages": messages, "inferenceConfig": {"maxTokens": max_tokens, "temperature": temperature}}
        if stop_sequences:
            body["inferenceConfig"]["stopSequences"] = stop_sequences
        if system:
            body["system"] = [{"text": system}]
        return body

    def converse(self, request: dict, accept: Accept | None = None) -> dict:
        """One Converse call through the cache, the limiter and the retry loop.

        `accept(answer)` decides whether an answer is worth keeping: only an accepted answer is
        cached, and a cached answer it does not accept (written by an older version) is asked again.
        """
        key = request_key(request)
        cached = self.cache.get(key)
        if cached is not None and (accept is None or accept(cached)):
            self.usage.add(cache_hits=1)
            return cached
        reserve = estimate_input_tokens(request) + request.get("inferenceConfig", {}).get("maxTokens", 0)
        for attempt in range(self.max_attempts):
            if attempt:
                self.usage.add(retries=1)
                self._sleep(self._jitter.uniform(0, min(self.backoff_cap_s, self.backoff_base_s * 2**attempt)))
            reservation = self.limiter.acquire(reserve)
            self.usage.stamp("first_request_at")
            self.usage.add(requests=1)
            try:
                response = self._client.converse(**request)
            except ClientError as error:
                code = error.response.get("Error", {}).get("Code", "")
                status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
                self.limiter.give_back(reservation)
                if code.lower() == THROTTLING:
                    self.usage.add(throttles=1)
                    self.limiter.throttled()
                    continue
                if code.lower() in RETRYABLE_ERRORS or status >= 500:
                    self.usage.add(server_errors=1)
                    continue
                raise BedrockRejected(f"Bedrock rejected the request ({code}, HTTP {status}): {error.response.get('Error', {}).get('Message', '')}") from None
            except NEVER_ARRIVED:
                self.limiter.give_back(reservation)
                self.usage.add(timeouts=1)
                continue
            except MAY_HAVE_ARRIVED:
                self.usage.add(timeouts=1)  # its tokens stay reserved: they may have been used
                continue
            usage = response.get("usage", {})
            self.limiter.reconcile(reservation, usage.get("inputTokens", 0) + usage.get("outputTokens", 0))
            self.limiter.answered()
            self.usage.add(answered=1, input_tokens=usage.get("inputTokens", 0), output_tokens=usage.get("outputTokens", 0))
            self.usage.stamp("last_answer_at")
            answer = {name: value for name, value in response.items() if name != "ResponseMetadata"}
            if accept is None or accept(answer):
                self.cache.put(key, answer)
            else:
                self.usage.add(not_cached=1)
            return answer
        raise BedrockUnavailable(f"Bedrock request still failing after {self.max_attempts} attempts (throttled or unavailable)")

    def converse_many(self, requests: Sequence[dict], accepts: Sequence[Accept] | None = None) -> list[dict | BedrockUnavailable]:
        """All requests on at most `max_workers` threads; results in request order. `accepts[i]` is
        request i's `accept` (see `converse`).

        A request that stayed unavailable comes back as its BedrockUnavailable; a rejected one
        (validation, access) raises BedrockRejected, since every other request would fail alike.
        """
        done = 0
        last_report = time.monotonic()
        lock = threading.Lock()

        def call(request: dict, accept: Accept | None) -> dict | BedrockUnavailable:
            nonlocal done, last_report
            try:
                return self.converse(request, accept)
            except BedrockUnavailable as error:
                return error
            finally:
                with lock:
                    done += 1
                    if time.monotonic() - last_report >= PROGRESS_EVERY_S or done == len(requests):
                        last_report = time.monotonic()
                        self._log(self.progress(done, len(requests)))

        pool = ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix="bedrock")
        try:
            return list(pool.map(call, requests, accepts or [None] * len(requests)))
        finally:
            # On an interrupt (SIGINT / SIGTERM) or a rejection, requests not yet started are dropped
            # instead of being sent while the step winds down.
            pool.shutdown(wait=False, cancel_futures=True)

    def progress(self, done: int, total: int) -> str:
        u = self.usage
        return (
            f"bedrock: {done}/{total} requests done, {u.requests} sent, {u.cache_hits} cache hits, "
            f"{u.throttles} throttles, {u.retries} retries, {u.requests_per_minute:.1f} req/min "
            f"(quota {self.limiter.requests_per_minute:g})"
        )
