"""Checks of the ingest stage: judge_records, raw_judgments, processed_samples and quarantined_judgments."""

import dagster as dg
import polars as pl

from tqc_dagster.assets.ingest import PROCESSED, QUARANTINED, RAW, RECORDS, read_manifests
from tqc_dagster.assets.metadata import counts_dict, table_metadata
from tqc_dagster.checks import check_spec, passed_or_explained, schema_check, schema_spec, stored
from tqc_dagster.config import TqcConfig
from tqc_dagster.core.judgments import Accounting
from tqc_dagster.core.batch_outputs import MISSING_FROM_OUTPUT
from tqc_dagster.core.manifests import manifest_comparison
from tqc_dagster.schemas import JudgeRecords, QuarantinedJudgments, RawJudgments, Samples
from tqc_dagster.stores import store_for, version_files


def stored_accounting(raw: pl.DataFrame, samples: pl.DataFrame, quarantined: pl.DataFrame) -> Accounting:
    """The data contract's accounting from stored frames: every copy of a record id beyond the one kept is a
    duplicate (a line without a record id is quarantined on its own)."""
    keyed = raw.get_column("record_id").drop_nulls()
    return Accounting(raw.height, samples.height, quarantined.height, keyed.len() - keyed.n_unique())


def build_ingest_checks(config: TqcConfig, partitions: dg.PartitionsDefinition, judge_versions: dg.PartitionsDefinition) -> list:
    max_rate = config.checks.max_quarantine_rate

    @dg.multi_asset_check(
        name=f"{RECORDS}_checks",
        specs=[
            schema_spec(RECORDS, JudgeRecords, judge_versions),
            check_spec(
                "manifest_totals",
                RECORDS,
                "Lines read per job folder equal the job manifest's totalRecordCount "
                "(a warning: a short folder means a lost or partly copied output file).",
                judge_versions,
                blocking=False,
            ),
        ],
        ins={RECORDS: stored(RECORDS)},
    )
    def judge_records_checks(context: dg.AssetCheckExecutionContext, judge_records: pl.DataFrame):
        pattern = config.judge_versions[context.partition_key].input
        files = version_files(config, context.partition_key)
        read_lines = judge_records.filter(pl.col("parse_error").fill_null("") != MISSING_FROM_OUTPUT)  # rows for records no file has
        manifests = manifest_comparison(read_lines, read_manifests(store_for(pattern, config.s3), files))
        yield schema_check(JudgeRecords, judge_records, RECORDS)
        short = manifests.filter(~pl.col("matches"))
        yield dg.AssetCheckResult(
            asset_key=RECORDS,
            check_name="manifest_totals",
            severity=dg.AssetCheckSeverity.WARN,
            **passed_or_explained(short.height == 0, f"{short.height} job folders hold fewer or more lines than their manifest says (see folders): "
                                  "an output file was lost or partly copied, or the manifest is missing."),
            metadata={"folders": table_metadata(manifests, 50)},
        )

    @dg.multi_asset_check(name=f"{RAW}_checks", specs=[schema_spec(RAW, RawJudgments, partitions)], ins={RAW: stored(RAW)})
    def raw_judgments_checks(raw_judgments: pl.DataFrame):
        yield schema_check(RawJudgments, raw_judgments, RAW)

    @dg.multi_asset_check(
        name=f"{PROCESSED}_checks",
        specs=[
            schema_spec(PROCESSED, Samples, partitions),
            schema_spec(QUARANTINED, QuarantinedJudgments, partitions),
            check_spec(
                "accounting",
                PROCESSED,
                "Every non-blank line x model is a valid sample, a quarantined row or a duplicate: nothing is dropped silently.",
                partitions,
                reads=(dg.AssetDep(RAW), dg.AssetDep(QUARANTINED)),
            ),
            check_spec(
                "quarantine_rate",
                PROCESSED,
                f"At most {max_rate:.0%} of (record, model) pairs are quarantined (checks.max_quarantine_rate); more means "
                "the input or the parser is broken, so these samples feed nothing downstream.",
                partitions,
            ),
        ],
        ins={RAW: stored(RAW), PROCESSED: stored(PROCESSED), QUARANTINED: stored(QUARANTINED)},
    )
    def processed_samples_checks(raw_judgments: pl.DataFrame, processed_samples: pl.DataFrame, quarantined_judgments: pl.DataFrame):
        accounting = stored_accounting(raw_judgments, processed_samples, quarantined_judgments)
        by_reason = counts_dict(quarantined_judgments, "reason")
        yield schema_check(Samples, processed_samples, PROCESSED)
        yield schema_check(QuarantinedJudgments, quarantined_judgments, QUARANTINED)
        lost = accounting.lines - accounting.valid - accounting.quarantined - accounting.duplicates
        yield dg.AssetCheckResult(
            asset_key=PROCESSED,
            check_name="accounting",
            **passed_or_explained(accounting.balanced, f"{lost} lines are neither a sample, a quarantined row nor a duplicate: "
                                  "rows were lost or made up between raw_judgments and here (a bug)."),
            metadata={"lines": accounting.lines, "valid": accounting.valid, "quarantined": accounting.quarantined, "duplicates": accounting.duplicates},
        )
        most_often = max(by_reason, key=by_reason.get, default="none")
        yield dg.AssetCheckResult(
            asset_key=PROCESSED,
            check_name="quarantine_rate",
            **passed_or_explained(
                accounting.quarantine_rate <= max_rate,
                f"{accounting.quarantine_rate:.1%} of (record, model) pairs quarantined, above checks.max_quarantine_rate {max_rate:.1%}. "
                f"Look at the reasons in quarantined_judgments (most often: {most_often}); fix the input or raise the threshold "
                "in the config if this input is known to be that noisy.",
            ),
            metadata={
                "quarantine_rate": dg.MetadataValue.float(round(accounting.quarantine_rate, 6)),
                "max_quarantine_rate": dg.MetadataValue.float(max_rate),
                "by_reason": dg.MetadataValue.json(by_reason),
            },
        )

    return [judge_records_checks, raw_judgments_checks, processed_samples_checks]
