"""Checks of the judging stage: judge_requests must be what Bedrock accepts before judge_jobs pays for it."""

import dagster as dg
import polars as pl

from tqc_dagster.assets.judging import REQUESTS, judged_versions
from tqc_dagster.assets.metadata import table_metadata
from tqc_dagster.checks import check_spec, passed_or_explained, schema_check, schema_spec, stored
from tqc_dagster.config import TqcConfig
from tqc_dagster.core.judge_requests import files_off_quota
from tqc_dagster.schemas import JudgeRequests


def build_judging_checks(config: TqcConfig) -> list:
    judged = judged_versions(config)
    if not judged:
        return []
    partitions = dg.StaticPartitionsDefinition(judged)

    @dg.multi_asset_check(
        name=f"{REQUESTS}_checks",
        specs=[
            schema_spec(REQUESTS, JudgeRequests, partitions),
            check_spec(
                "within_batch_quotas",
                REQUESTS,
                "Every request file is within the batch quotas of its judge version's config (records_per_file, "
                "max_file_bytes, min_records_per_job): Bedrock refuses a job otherwise, so judge_jobs does not run.",
                partitions,
            ),
        ],
        ins={REQUESTS: stored(REQUESTS)},
    )
    def judge_requests_checks(context: dg.AssetCheckExecutionContext, judge_requests: pl.DataFrame):
        batch = config.judge_versions[context.partition_key].batch
        off = files_off_quota(judge_requests, batch.records_per_file, batch.max_file_bytes, batch.min_records_per_job)
        yield schema_check(JudgeRequests, judge_requests, REQUESTS)
        yield dg.AssetCheckResult(
            asset_key=REQUESTS,
            check_name="within_batch_quotas",
            **passed_or_explained(off.is_empty(), f"{off.height} request files past a batch quota (see files): fix the quotas in "
                                  f"judge_versions.{context.partition_key}.batch and rematerialize judge_requests."),
            metadata={"files": table_metadata(off, 20)},
        )

    return [judge_requests_checks]
