"""A fake Amazon Bedrock runtime on 127.0.0.1 that speaks the Converse wire format.

boto3 talks to it through `endpoint_url`, so botocore's real request signing, error parsing
and timeouts are exercised. It answers synthesis requests with generated samples of the
requested group, judge prompts with a judge array in the real format (agreeing with a sample it
generated, or not, by `Faults.judge_disagree` / `judge_unreadable`), and injects throttling (HTTP 429 ThrottlingException), 5xx, latency and
malformed model output on demand. Every request is logged with its arrival time, on `clock`
(real by default; tests on simulated time pass theirs). Tests synchronize on what the server did,
never on sleeps: `wait_for` blocks until a condition on the log holds, `client_hung_up` lets a
handler hold a request until its client gives up.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

REQUEST_SPEC = re.compile(r"<request>(.*?)</request>", re.S)
# A judge prompt (the real jobs' layout): translation 1's text, read by its delimiters.
JUDGED_TRANSLATION = re.compile(r'<translations target_lang="[^"]*">\n<translation id="1">\n<translator>[^<]*</translator>\n<content>(.*?)</content>', re.S)
PATH = re.compile(r"^/model/(?P<model>[^/]+)/converse$")


@dataclass
class Faults:
    """Probabilities per request (decided by a seeded generator) and latency bounds in seconds."""

    throttle: float = 0.0
    server_error: float = 0.0
    malformed: float = 0.0
    wrong_bucket: float = 0.0
    latency: tuple[float, float] = (0.0, 0.0)
    validation_error: bool = False
    # Judge prompts: shares of translations the judge puts in another group, or answers without a judge array.
    # Decided per translation text (a hash), not per request: a rerun gets the same verdict.
    judge_disagree: float = 0.0
    judge_unreadable: float = 0.0


@dataclass
class LoggedRequest:
    arrived: float
    model_id: str
    body_sha256: str
    status: int


HOLD_LIMIT_S = 300  # a held request is answered after this at the latest, so nothing waits forever
HANG_GUARD_S = 120.0  # the bound of every wait on the server: it turns a hang into a failure, no verdict depends on it


@dataclass
class FakeBedrock:
    """`hold=True` keeps every request waiting until `release` is set (for kill and interrupt tests);
    `arrived` is set when the first request comes in.

    `clock` stamps arrivals; `network_delay` (seconds, low and high) is a modeled delay between the
    client sending a request and the server receiving it, added to each arrival stamp (seeded): on
    simulated time a request otherwise arrives at the very instant the limiter let it go."""

    faults: Faults = field(default_factory=Faults)
    seed: int = 0
    log: list[LoggedRequest] = field(default_factory=list)
    hold: bool = False
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    network_delay: tuple[float, float] = (0.0, 0.0)

    def __post_init__(self):
        self._random = random.Random(self.seed)
        self._delays = random.Random(f"network-{self.seed}")
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # notified whenever a request is logged or finished
        self._current = threading.local()  # the request a handler thread is serving
        self.in_progress = 0  # requests being handled (arrived, answer not yet sent)
        self.made: dict[str, list[float]] = {}  # translation -> scores of every sample this fake generated
        self.arrived = threading.Event()
        self.release = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out as separate writes: without this each answer waits ~40 ms for a delayed ACK

            def log_message(self, *args):  # keep test output quiet
                pass

            def do_POST(self):
                with fake._changed:
                    fake.in_progress += 1
                try:
                    self._serve()
                finally:
                    with fake._changed:
                        fake.in_progress -= 1
                        fake._changed.notify_all()

            def _serve(self):
                arrived = fake._arrival_time()
                fake._current.handler, fake._current.arrived = self, arrived
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                match = PATH.match(self.path)
                status, headers, payload = fake.respond(unquote(match["model"]) if match else "", body) if match else (404, {}, {"message": "not found"})
                with fake._changed:
                    fake.log.append(LoggedRequest(arrived, unquote(match["model"]) if match else "", hashlib.sha256(body).hexdigest(), status))
                    fake._changed.notify_all()
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    for name, value in {"Content-Type": "application/json", "Content-Length": str(len(data)), **headers}.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client is gone (killed, interrupted or timed out)
                    pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeBedrock:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()

    def _arrival_time(self) -> float:
        low, high = self.network_delay
        if not high:
            return self.clock()
        with self._lock:
            delay = self._delays.uniform(low, high)
        return self.clock() + delay

    def wait_for(self, predicate: Callable[[], bool], timeout: float = HANG_GUARD_S) -> bool:
        """Block until `predicate()` holds; it is checked whenever a request is logged or finished. False after `timeout`."""
        with self._changed:
            return self._changed.wait_for(predicate, timeout)

    def client_hung_up(self, timeout: float = HANG_GUARD_S) -> bool:
        """In a handler thread (e.g. from a RecordingFakeBedrock script): block until the client of the current
        request closes its connection, as a client whose read timed out does. False if it has not after `timeout`."""
        connection = self._current.handler.connection
        readable, _, _ = select.select([connection], [], [], timeout)
        if not readable:
            return False
        try:
            return connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:  # reset: gone as well
            return True

    def _draw(self) -> tuple[float, float, float, float, float]:
        with self._lock:
            low, high = self.faults.latency
            return self._random.random(), self._random.random(), self._random.random(), self._random.random(), self._random.uniform(low, high)

    def respond(self, model_id: str, body: bytes) -> tuple[int, dict, dict]:
        self.arrived.set()
        if self.hold:
            self.release.wait(timeout=HOLD_LIMIT_S)
        throttle, server_error, malformed, wrong_bucket, latency = self._draw()
        time.sleep(latency)
        if self.faults.validation_error:
            return 400, {"x-amzn-ErrorType": "ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/"}, {"message": "Malformed input request"}
        if throttle < self.faults.throttle:
            return 429, {"x-amzn-ErrorType": "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/"}, {"message": "Too many requests, please wait before trying again."}
        if server_error < self.faults.server_error:
            return 503, {"x-amzn-ErrorType": "ServiceUnavailableException:http://internal.amazon.com/coral/com.amazon.bedrock/"}, {"message": "Service unavailable"}
        prompt = prompt_text(json.loads(body))
        stop_reason = "end_turn"
        if JUDGED_TRANSLATION.search(prompt):
            text, stop_reason = self.judge_text(prompt), "stop_sequence"
        elif malformed < self.faults.malformed:
            text = "I'm sorry, here are the samples: [{\"source\": \"broken"
        else:
            samples = generated_samples(prompt, shift_bucket=wrong_bucket < self.faults.wrong_bucket)
            with self._lock:
                self.made.update((sample["translation"], sample["scores"]) for sample in samples)
            text = json.dumps(samples, ensure_ascii=False)
        input_tokens = math.ceil(len(body) / 4)
        output_tokens = math.ceil(len(text.encode()) / 4)
        return 200, {}, {
            "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
            "stopReason": stop_reason,
            "usage": {"inputTokens": input_tokens, "outputTokens": output_tokens, "totalTokens": input_tokens + output_tokens},
            "metrics": {"latencyMs": int(latency * 1000)},
        }

    def judge_verdict(self, prompt: str) -> str:
        """What the judge does with a judge prompt's translation: agree, disagree or unreadable (a pure function of its text)."""
        share = int(hashlib.sha256(JUDGED_TRANSLATION.search(prompt).group(1).encode()).hexdigest()[:12], 16) / 16**12
        if share < self.faults.judge_unreadable:
            return "unreadable"
        return "disagree" if share < self.faults.judge_unreadable + self.faults.judge_disagree else "agree"

    def judge_text(self, prompt: str) -> str:
        """The judge's answer after the ```json prefill, in the real jobs' format: one entry per translation id.

        agree: the generated sample's scores with its low score moved by half a point inside its bucket
        (so a kept sample shows the judge's scores, not the generator's); disagree: the low score two
        buckets away; a translation this fake never generated is flawless; unreadable: prose, no array.
        """
        verdict = self.judge_verdict(prompt)
        if verdict == "unreadable":
            return "I cannot score these translations without more context."
        with self._lock:
            scores = list(self.made.get(JUDGED_TRANSLATION.search(prompt).group(1), [5.0] * 7))
        low = min(range(7), key=lambda c: (scores[c], c))
        if scores[low] < 5.0:
            bucket = math.floor(scores[low])
            half = 0.0 if scores[low] > bucket else 0.5
            scores[low] = ((bucket + 2) % 5 if verdict == "disagree" else bucket) + half
        entries = [
            {"id": 1, "thought": f"Criterion {low} loses points: the judge sees a concrete problem.", "scores": scores},
            {"id": 2, "thought": "The translation is missing or empty.", "scores": [0.0] * 7},
        ]
        return "\n" + json.dumps(entries, ensure_ascii=False) + "\n"


def prompt_text(request: dict) -> str:
    """The text of a Converse request's messages (a judge request's ends with the assistant prefill)."""
    return "".join(block.get("text", "") for message in request.get("messages", []) for block in message.get("content", []))


def generated_samples(prompt: str, shift_bucket: bool = False) -> list[dict]:
    """Samples of the group named in the prompt's <request>, unique per prompt."""
    match = REQUEST_SPEC.search(prompt)
    if not match:
        return []
    spec = json.loads(match.group(1))
    criterion, bucket = spec["criterion"], spec["score_range"][0]
    if shift_bucket:
        bucket = (bucket + 2) % 5
    tag = hashlib.sha256(prompt.encode()).hexdigest()[:10]
    samples = []
    for i in range(spec["count"]):
        scores = [5.0] * 7
        scores[criterion] = float(bucket) + (0.5 if i % 2 else 0.0)
        samples.append(
            {
                "source": f"{spec['product_category'].replace('_', ' ')} Gadget Model {tag}-{i} 2 Pack",
                "translation": f"小工具 型号 {tag}-{i} 2 件装",
                "target_lang": spec["target_lang"],
                "thought": f"Criterion {criterion} ({spec['criterion_name']}) is violated: sample {i} of batch {spec['batch']}.",
                "scores": scores,
            }
        )
    return samples
