"""Throughput of the Bedrock Converse client against its quota, on the fake endpoint (a benchmark, not a test).

Starts the fake Converse endpoint on 127.0.0.1 with realistic latency, drives
ConverseClient.converse_many with distinct synthesis-sized requests (~1.5k input tokens,
maxTokens ~1k) for about the given duration, then reports from the *server's* request log:
achieved requests/min against the quota, the fullest sliding 60-second window of requests and of
billed tokens, and how far either went over its quota (0 expected).

    .venv/bin/python benchmarks/bedrock_throughput.py --minutes 3 --rpm 150 --latency 1.0 3.0 --workers 10 --throttle 0.0

Only dummy AWS credentials are used; nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DUMMY_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "AKIABENCHMARKDUMMY01",
    "AWS_SECRET_ACCESS_KEY": "benchmark-dummy-secret",
    "AWS_DEFAULT_REGION": "us-west-2",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}
os.environ.update(DUMMY_AWS_ENV)
for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_BEDROCK_RUNTIME"):
    os.environ.pop(name, None)

from tqc_dagster.bedrock.client import ConverseClient, estimate_input_tokens  # noqa: E402
from tqc_dagster.bedrock.limiter import WINDOW_S  # noqa: E402
from tqc_dagster.core.synthesis.bedrock import SYSTEM_PROMPT, group_request  # noqa: E402
from tqc_dagster_tests.bedrock_helpers import RecordingFakeBedrock, sliding_max  # noqa: E402
from tqc_dagster_tests.fake_bedrock import Faults  # noqa: E402

CATEGORIES = ("Home_and_Kitchen", "Electronics", "Toys_and_Games", "Beauty", "Sports_and_Outdoors")
CHARS_PER_TOKEN = 4  # how the fake bills input: ceil(body bytes / 4)


def examples(i: int, target_chars: int) -> list[dict]:
    """Judged-looking examples, long enough that the whole request is about `target_chars` bytes."""
    out, k = [], 0
    while sum(len(json.dumps(e)) for e in out) < target_chars:
        out.append({
            "source": f"Stainless Steel Insulated Water Bottle {i}-{k} with Straw Lid, 32 oz, BPA Free, Leak Proof, Keeps Drinks Cold 24 Hours",
            "translation": f"不锈钢保温水瓶 {i}-{k} 带吸管盖 32 盎司 不含双酚A 防漏 保冷24小时",
            "target_lang": "zh-cn",
            "thought": "The translation renders the title faithfully, but the unit '32 oz' is kept while the quantity of the "
                       "pack is dropped; the key noun and the material are translated accurately, no extra words are added.",
            "scores": [5.0, 5.0, 5.0, 5.0, 2.5, 5.0, 4.5],
        })
        k += 1
    return out


def requests(client: ConverseClient, n: int, input_tokens: int, max_tokens: int) -> list[dict]:
    body = []
    budget = input_tokens * CHARS_PER_TOKEN - len(SYSTEM_PROMPT) - 300
    for i in range(n):
        key = (CATEGORIES[i % len(CATEGORIES)], i % 6, (i // 6) % 5)
        prompt, _ = group_request(key, "zh-cn", 5, examples(i, budget), batch=f"bench.{i}")
        body.append(client.request([{"role": "user", "content": [{"text": prompt}]}], system=SYSTEM_PROMPT, max_tokens=max_tokens))
    return body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=3.0, help="about how long to drive traffic")
    parser.add_argument("--rpm", type=float, default=150, help="requests per minute quota")
    parser.add_argument("--tpm", type=int, default=400_000, help="tokens per minute quota")
    parser.add_argument("--latency", type=float, nargs=2, default=(1.0, 3.0), metavar=("LOW", "HIGH"), help="fake model latency bounds, s")
    parser.add_argument("--workers", type=int, default=10)
    parser.add_argument("--throttle", type=float, default=0.0, help="share of requests the fake throttles")
    parser.add_argument("--input-tokens", type=int, default=1500, help="billed input tokens per request, about")
    parser.add_argument("--max-tokens", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    n = max(2, math.ceil(args.rpm * args.minutes))
    faults = Faults(throttle=args.throttle, latency=tuple(args.latency))
    with tempfile.TemporaryDirectory() as cache, RecordingFakeBedrock(faults, seed=args.seed) as fake:
        client = ConverseClient(
            region="us-west-2", model_id="anthropic.claude-3-5-sonnet-20241022-v2:0", requests_per_minute=args.rpm,
            tokens_per_minute=args.tpm, max_workers=args.workers, max_attempts=8, timeout_s=max(30.0, 3 * args.latency[1]),
            cache_dir=cache, endpoint_url=fake.url, log=lambda message: print(f"  {message}", flush=True),
        )
        batch = requests(client, n, args.input_tokens, args.max_tokens)
        print(f"fake Bedrock at {fake.url}: {n} distinct requests, latency {args.latency[0]:g}-{args.latency[1]:g} s, "
              f"throttle {args.throttle:.0%}, {args.workers} workers", flush=True)
        started = time.monotonic()
        answers = client.converse_many(batch)
        took = time.monotonic() - started
        served = sorted(fake.served, key=lambda s: s.arrived)
        log = sorted(fake.log, key=lambda entry: entry.arrived)

    arrivals = [entry.arrived for entry in log]
    span = arrivals[-1] - arrivals[0]
    achieved = (len(arrivals) - 1) / span * 60 if span > 0 else 0.0
    max_requests = int(sliding_max(arrivals, WINDOW_S))
    max_tokens = int(sliding_max([s.arrived for s in served], WINDOW_S, [s.tokens for s in served]))
    failed = sum(isinstance(answer, Exception) for answer in answers)
    usage = client.usage
    billed = [s.tokens for s in served if s.status == 200]
    print()
    print(f"requests sent (server log)         {len(log)}  ({sum(e.status == 200 for e in log)} answered, {sum(e.status == 429 for e in log)} throttled)")
    print(f"failed after all attempts          {failed}")
    print(f"wall time                          {took:.1f} s  (first to last arrival {span:.1f} s)")
    print(f"quota                              {args.rpm:g} requests/min, {args.tpm} tokens/min")
    print(f"achieved (server log)              {achieved:.2f} requests/min")
    print(f"utilization                        {achieved / args.rpm:.1%}")
    print(f"max requests in any 60 s window    {max_requests}" + ("  (the run is shorter than a window: see achieved)" if span < WINDOW_S else ""))
    print(f"requests over quota                {max(0, max_requests - math.floor(args.rpm))}")
    print(f"max tokens in any 60 s window      {max_tokens}  of {args.tpm} tokens/min ({max_tokens / args.tpm:.1%}); over quota {max(0, max_tokens - args.tpm)}")
    reserved = estimate_input_tokens(batch[0]) + args.max_tokens
    print(f"tokens per answered request        {sum(billed) / max(1, len(billed)):.0f} billed, {reserved} reserved up front (estimate + maxTokens)")
    print(f"throttles / retries                {usage.throttles} / {usage.retries}")
    print(f"client usage summary               {json.dumps(usage.summary())}")


if __name__ == "__main__":
    main()
