"""`tqc estimate`: what bedrock synthesis will take, before paying for it.

From the stored processed samples: per partition the groups to top up, samples to make,
requests, tokens, wall time at the configured quota and cost. The prompts are the real
ones the backend would send first, so the token figures follow the real prompt size.
"""

from __future__ import annotations

import json
import math

import polars as pl

from tqc_dagster.assets.ingest import PROCESSED
from tqc_dagster.bedrock.client import BYTES_PER_TOKEN, estimate_input_tokens
from tqc_dagster.config import ConfigError, TqcConfig
from tqc_dagster.core.synthesis import GROUP_KEYS, deficits
from tqc_dagster.core.synthesis.bedrock import SAMPLE_KEYS, SYSTEM_PROMPT, group_examples, group_language, group_request, judged_groups
from tqc_dagster.resources.storage import asset_path
from tqc_dagster.stores import store_for


def _request_tokens(group: pl.DataFrame, key: tuple, per_request: int, seed: int) -> tuple[int, int]:
    """(input tokens, expected output tokens) of the first request for a group."""
    examples = group_examples(group, "0.0", seed)
    prompt, _ = group_request(key, group_language(group), per_request, examples, "0.0")
    request = {"messages": [{"content": [{"text": prompt}]}], "system": [{"text": SYSTEM_PROMPT}]}
    sample_bytes = sum(len(json.dumps({k: e[k] for k in SAMPLE_KEYS}, ensure_ascii=False).encode()) for e in examples) / max(1, len(examples))
    return estimate_input_tokens(request), math.ceil(per_request * sample_bytes / BYTES_PER_TOKEN)


def estimate_partition(samples: pl.DataFrame, config: TqcConfig) -> dict:
    synthesis, bedrock = config.synthesis, config.bedrock
    wanted = deficits(samples, synthesis.min_samples)
    groups = judged_groups(samples)
    requests = input_tokens = output_tokens = 0
    for row in wanted.iter_rows(named=True):
        key = tuple(row[k] for k in GROUP_KEYS)
        count = math.ceil(row["needed"] / synthesis.samples_per_request)
        per_input, per_output = _request_tokens(groups[key], key, synthesis.samples_per_request, synthesis.seed)
        requests += count
        input_tokens += count * per_input
        output_tokens += count * min(per_output, bedrock.max_tokens)
    minutes = max(requests / bedrock.requests_per_minute, (input_tokens + output_tokens) / bedrock.tokens_per_minute)
    price = bedrock.price
    return {
        "groups": wanted.height,
        "samples_to_make": int(wanted.get_column("needed").sum() or 0),
        "requests": requests,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "hours_at_quota": round(minutes / 60, 2),
        "cost_usd": None if price is None else round((input_tokens * price.input + output_tokens * price.output) / 1e6, 2),
    }


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
        rows.append({"partition": f"{judge_version}|{model}", **estimate_partition(store.read_parquet(path), config)})
    return pl.DataFrame(rows)
