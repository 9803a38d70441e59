"""`tqc resubmit-missing`: ask Bedrock again, in new batch jobs, only the records no output of a judged version answered.

After a judged version's ingest, its records missing from every output (failed, expired, stopped or partial
jobs) or answered only by Bedrock errors are written as a new round of request files (`<input_uri>/retry-<n>/`,
judge_requests with `missing_only`), and judge_jobs submits them (the same content-hash names and tokens, the
same `max_concurrent_jobs`). The batch_jobs sensor then requests the ingest again once every job, old and new,
is done; the duplicates rule keeps the newest valid judgment of a record.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import polars as pl

from tqc_dagster.assets.judging import JOBS, REQUESTS, judged_versions
from tqc_dagster.config import ConfigError, TqcConfig
from tqc_dagster.definitions import build_definitions
from tqc_dagster.resources.storage import asset_path
from tqc_dagster.stores import store_for


def resubmit_missing(config: TqcConfig, judge_version: str, home: Path) -> pl.DataFrame:
    """Materialize judge_requests (missing_only) then judge_jobs of `judge_version` on the instance at `home`;
    the stored judge_jobs. Raises ConfigError for a version not judged here, RuntimeError naming the failed step."""
    if judge_version not in judged_versions(config):
        raise ConfigError(f"{judge_version} is not judged through batch inference (no judge_from); judged: {judged_versions(config)}")
    os.environ["DAGSTER_HOME"] = str(home)
    defs = build_definitions(config)
    steps = [(REQUESTS, {"ops": {REQUESTS: {"config": {"missing_only": True}}}}), (JOBS, None)]
    with dg.DagsterInstance.get() as instance:
        for asset, run_config in steps:
            result = dg.materialize(
                list(defs.assets), selection=[asset], partition_key=judge_version, run_config=run_config,
                resources=defs.resources, instance=instance, raise_on_error=False,
            )
            if not result.success:
                failures = [event.step_failure_data.error.message.strip() for event in result.all_events if event.is_step_failure]
                raise RuntimeError(f"{asset} of {judge_version} failed: {' '.join(failures)}")
    path = asset_path(config.storage_root, JOBS, judge_version)
    return store_for(path, config.s3).read_parquet(path)
