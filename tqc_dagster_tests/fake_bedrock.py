"""A fake Amazon Bedrock runtime on 127.0.0.1 that speaks the Converse wire format.

boto3 talks to it through `endpoint_url`, so botocore's real request signing, error parsing
and timeouts are exercised. It answers synthesis requests with generated samples of the
requested group, and injects throttling (HTTP 429 ThrottlingException), 5xx, latency and
malformed model output on demand. Every request is logged with its arrival time.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import threading
import time
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


@dataclass
class FakeBedrock:
    """`hold=True` keeps every request waiting until `release` is set (for kill and interrupt tests);
    `arrived` is set when the first request comes in."""

    faults: Faults = field(default_factory=Faults)
    seed: int = 0
    log: list[LoggedRequest] = field(default_factory=list)
    hold: bool = False

    def __post_init__(self):
        self._random = random.Random(self.seed)
        self._lock = threading.Lock()
        self.arrived = threading.Event()
        self.release = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output quiet
                pass

            def do_POST(self):
                arrived = time.monotonic()
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                match = PATH.match(self.path)
                status, headers, payload = fake.respond(unquote(match["model"]) if match else "", body) if match else (404, {}, {"message": "not found"})
                with fake._lock:
                    fake.log.append(LoggedRequest(arrived, unquote(match["model"]) if match else "", hashlib.sha256(body).hexdigest(), status))
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    for name, value in {"Content-Type": "application/json", "Content-Length": str(len(data)), **headers}.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client is gone (killed or interrupted)
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
