"""`tqc estimate`, judging: what judging a version through Bedrock batch inference will ask and cost, before paying.

Per judged version (`judge_from`), from the stored judge_records of its judge_from version: the records
that would be asked, input tokens of the real prompts (the requests `judge_requests` would write: system,
user turn and prefill, `bedrock.client.BYTES_PER_TOKEN` bytes a token), output tokens as the judge_from
version's judge wrote them (the median of its records' output_tokens, at most prompt.max_tokens; a newer
judge may write more), the jobs (request files within the batch quotas) and their rounds at
`max_concurrent_jobs`, the batch cost (`bedrock.batch_prices` of the judge model) and, for comparison, the
on-demand cost (`bedrock.prices`) and hours at the on-demand quota (`bedrock.requests_per_minute`).
"""

from __future__ import annotations

import math

import polars as pl

from tqc_dagster.assets.ingest import RECORDS
from tqc_dagster.assets.judging import judged_versions
from tqc_dagster.bedrock.client import BYTES_PER_TOKEN
from tqc_dagster.config import ConfigError, TqcConfig
from tqc_dagster.core.judge_requests import build_requests, cut_files
from tqc_dagster.resources.storage import asset_path
from tqc_dagster.stores import store_for


def judging_partition(records: pl.DataFrame, config: TqcConfig, judge_version: str) -> dict:
    """The estimate of one judged version from its judge_from's judge_records (columns of batch_outputs.RECORD_SCHEMA)."""
    version = config.judge_versions[judge_version]
    batch, prompt = version.batch, version.batch.prompt
    translation_ids = sorted(model.translation_id for model in config.models.values())
    requests, _ = build_requests(records, prompt, translation_ids)
    fixed_bytes = len(prompt.system.encode()) + len(prompt.prefill.encode())
    input_tokens = requests.select(((pl.col("prompt_bytes") + fixed_bytes) / BYTES_PER_TOKEN).ceil().sum()).item()
    observed = records.get_column("output_tokens").drop_nulls()
    per_output = min(prompt.max_tokens, int(observed.median())) if observed.len() else prompt.max_tokens
    output_tokens = per_output * requests.height
    jobs = cut_files(requests, batch.records_per_file, batch.max_file_bytes, 1).get_column("file").n_unique() if requests.height else 0
    batch_price, price = config.bedrock.batch_prices.get(version.judge_model), config.bedrock.prices.get(version.judge_model)

    def cost(rate) -> float | None:
        return None if rate is None else round(rate.cost(input_tokens, output_tokens), 2)

    return {
        "judge_version": judge_version,
        "judge_model": version.judge_model,
        "records": requests.height,
        "input_tokens": int(input_tokens or 0),
        "output_tokens": output_tokens,
        "jobs": jobs,
        "job_rounds": math.ceil(jobs / batch.max_concurrent_jobs),
        "batch_cost_usd": cost(batch_price),
        "on_demand_cost_usd": cost(price),
        "on_demand_hours_at_quota": round(requests.height / config.bedrock.requests_per_minute / 60, 1),
    }


def estimate_judging(config: TqcConfig) -> pl.DataFrame:
    """One row per judged version; raises ConfigError when a judge_from version is not ingested yet."""
    rows = []
    for judge_version in judged_versions(config):
        source = config.judge_versions[judge_version].judge_from
        path = asset_path(config.storage_root, RECORDS, source)
        store = store_for(path, config.s3)
        if not store.exists(path):
            raise ConfigError(f"{RECORDS} of {source} (judge_from of {judge_version}) is not materialized ({path}); run tqc run --judge-version {source}")
        rows.append(judging_partition(store.read_parquet(path), config, judge_version))
    return pl.DataFrame(rows)


def print_judging(config: TqcConfig, table: pl.DataFrame) -> None:
    """The judging estimate as `tqc estimate` prints it."""
    import click

    click.echo("judging through Bedrock batch inference (judge versions with judge_from):")
    with pl.Config(tbl_rows=100, tbl_cols=20, tbl_width_chars=250, tbl_hide_column_data_types=True, tbl_hide_dataframe_shape=True, thousands_separator=True):
        click.echo(table)
    click.echo(
        "input tokens: the real prompts; output tokens: the median the judge_from version's judge wrote per record; "
        f"jobs: request files within the batch quotas, run {', '.join(str(config.judge_versions[v].batch.max_concurrent_jobs) for v in table.get_column('judge_version'))} "
        "at a time (job_rounds); batch prices: bedrock.batch_prices; on demand: bedrock.prices at bedrock.requests_per_minute.\n"
    )
