"""`tqc estimate`: what bedrock synthesis will take, before paying for it.

From the stored processed samples: per partition the groups to top up, samples to make,
requests, tokens, wall time at the configured quota and cost. The prompts are the real
ones the backend would send first, so the token figures follow the real prompt size.
With synthesis.verify_with_judge, every sample to make is also one judge request
(`verify_requests`, its tokens in the token columns, its cost at the judge model's price).
With synthesis.batch, a partition whose first round reaches batch.min_requests shows `batch_requests` (its
round 0, sent through batch inference) and `cost_with_batch_usd`: round 0's generation tokens at the batch
price (`bedrock.batch_prices`), everything else on demand.
"""

from __future__ import annotations

import json
import math

import polars as pl

from tqc_dagster.assets.ingest import PROCESSED
from tqc_dagster.bedrock.client import BYTES_PER_TOKEN, estimate_input_tokens
from tqc_dagster.config import ConfigError, TqcConfig
from tqc_dagster.core.synthesis import GROUP_KEYS, deficits
from tqc_dagster.core.judge_prompt import JUDGE_SYSTEM_PROMPT
from tqc_dagster.core.synthesis.bedrock import GIVE_UP_AFTER_REQUESTS, SAMPLE_KEYS, SYSTEM_PROMPT, group_examples, group_language, group_request, judged_groups
from tqc_dagster.core.synthesis.verify import judge_messages
from tqc_dagster.resources.storage import asset_path
from tqc_dagster.stores import store_for


def _request_tokens(group: pl.DataFrame, key: tuple, per_request: int, seed: int) -> tuple[int, int]:
    """(input tokens, expected output tokens) of the first request for a group."""
    examples = group_examples(group, "0.0", seed)
    prompt, _ = group_request(key, group_language(group), per_request, examples, "0.0")
    request = {"messages": [{"content": [{"text": prompt}]}], "system": [{"text": SYSTEM_PROMPT}]}
    sample_bytes = sum(len(json.dumps({k: e[k] for k in SAMPLE_KEYS}, ensure_ascii=False).encode()) for e in examples) / max(1, len(examples))
    return estimate_input_tokens(request), math.ceil(per_request * sample_bytes / BYTES_PER_TOKEN)


def _judge_tokens(group: pl.DataFrame, seed: int) -> tuple[int, int]:
    """(input tokens, expected output tokens) of the judge request verifying one sample of a group, its first example
    standing in for the sample (the answer: that example's thought and scores for both translation ids)."""
    example = group_examples(group, "0.0", seed)[0]
    request = {"messages": judge_messages(example["source"], example["translation"], example["target_lang"]), "system": [{"text": JUDGE_SYSTEM_PROMPT}]}
    answer = json.dumps([{"id": i, "thought": example["thought"], "scores": example["scores"]} for i in (1, 2)], ensure_ascii=False)
    return estimate_input_tokens(request), math.ceil(len(answer.encode()) / BYTES_PER_TOKEN)


def estimate_partition(samples: pl.DataFrame, config: TqcConfig, judge_version: str) -> dict:
    """The figures of one partition (`judge_version` names the verifying judge); `verify_requests` only with verification."""
    synthesis, bedrock = config.synthesis, config.bedrock
    judge_model = config.verifying_judge(judge_version)
    wanted = deficits(samples, synthesis.min_samples)
    groups = judged_groups(samples)
    requests = input_tokens = output_tokens = verify_requests = verify_input = verify_output = 0
    first = [0, 0, 0]  # round 0: requests, input tokens, output tokens
    for row in wanted.iter_rows(named=True):
        key = tuple(row[k] for k in GROUP_KEYS)
        count = math.ceil(row["needed"] / synthesis.samples_per_request)
        per_input, per_output = _request_tokens(groups[key], key, synthesis.samples_per_request, synthesis.seed)
        requests += count
        input_tokens += count * per_input
        output_tokens += count * min(per_output, bedrock.max_tokens)
        in_round_0 = min(count, synthesis.max_requests_per_group, GIVE_UP_AFTER_REQUESTS)  # BedrockBackend.requests_for
        first = [first[0] + in_round_0, first[1] + in_round_0 * per_input, first[2] + in_round_0 * min(per_output, bedrock.max_tokens)]
        if judge_model:
            judge_input, judge_output = _judge_tokens(groups[key], synthesis.seed)
            verify_requests += row["needed"]
            verify_input += row["needed"] * judge_input
            verify_output += row["needed"] * min(judge_output, bedrock.max_tokens)
    # Generation and verification take turns (a round of each), so their requests add up against the quota.
    tokens = input_tokens + output_tokens + verify_input + verify_output
    minutes = max((requests + verify_requests) / bedrock.requests_per_minute, tokens / bedrock.tokens_per_minute)
    by_model = [(bedrock.model_id, input_tokens, output_tokens)] + ([(judge_model, verify_input, verify_output)] if judge_model else [])
    prices = [bedrock.prices.get(model) for model, _, _ in by_model]
    cost = None if None in prices else sum(price.cost(i, o) for price, (_, i, o) in zip(prices, by_model))
    batch = _with_batch(config, cost, first) if synthesis.batch else {}
    return {
        "groups": wanted.height,
        "samples_to_make": int(wanted.get_column("needed").sum() or 0),
        "requests": requests,
        **({"verify_requests": verify_requests} if judge_model else {}),
        "input_tokens": input_tokens + verify_input,
        "output_tokens": output_tokens + verify_output,
        "hours_at_quota": round(minutes / 60, 2),
        "cost_usd": None if cost is None else round(cost, 2),
        **batch,
    }


def _with_batch(config: TqcConfig, cost: float | None, first: list[int]) -> dict:
    """`batch_requests` (round 0 when it reaches synthesis.batch.min_requests, else 0) and the cost with them at the batch price."""
    requests, input_tokens, output_tokens = first if first[0] >= config.synthesis.batch.min_requests else (0, 0, 0)
    price, batch_price = config.bedrock.prices.get(config.bedrock.model_id), config.bedrock.batch_prices.get(config.bedrock.model_id)
    saved = None if cost is None or batch_price is None else price.cost(input_tokens, output_tokens) - batch_price.cost(input_tokens, output_tokens)
    return {"batch_requests": requests, "cost_with_batch_usd": None if saved is None else round(cost - saved, 2)}


def estimate(config: TqcConfig, partitions: list[tuple[str, str]]) -> pl.DataFrame:
    rows = []
    for judge_version, model in partitions:
        path = asset_path(config.storage_root, PROCESSED, judge_version, model)
        store = store_for(path, config.s3)
        if not store.exists(path):
            raise ConfigError(
                f"{PROCESSED} of {judge_version}|{model} is not materialized ({path}); run "
                f"tqc run --partition '{judge_version}|{model}' --select judge_records,raw_judgments,processed_samples,quarantined_judgments"
            )
        rows.append({"partition": f"{judge_version}|{model}", **estimate_partition(store.read_parquet(path), config, judge_version)})
    return pl.DataFrame(rows)
