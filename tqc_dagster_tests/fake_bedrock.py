"""A fake Amazon Bedrock runtime on 127.0.0.1 that speaks the Converse wire format.

boto3 talks to it through `endpoint_url`, so botocore's real request signing, error parsing
and timeouts are exercised. It answers synthesis requests with generated samples of the
requested group, and injects throttling (HTTP 429 ThrottlingException), 5xx, latency and
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
        request = json.loads(body)
        prompt = "".join(block.get("text", "") for message in request["messages"] for block in message["content"])
        if malformed < self.faults.malformed:
            text = "I'm sorry, here are the samples: [{\"source\": \"broken"
        else:
            text = json.dumps(generated_samples(prompt, shift_bucket=wrong_bucket < self.faults.wrong_bucket), ensure_ascii=False)
        input_tokens = math.ceil(len(body) / 4)
        output_tokens = math.ceil(len(text.encode()) / 4)
        return 200, {}, {
            "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
            "stopReason": "end_turn",
            "usage": {"inputTokens": input_tokens, "outputTokens": output_tokens, "totalTokens": input_tokens + output_tokens},
            "metrics": {"latencyMs": int(latency * 1000)},
        }


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
