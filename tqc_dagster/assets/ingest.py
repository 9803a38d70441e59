"""Ingest: batch outputs -> judge_records (per judge version) -> raw_judgments -> processed_samples + quarantined_judgments."""


import dagster as dg
import polars as pl

from tqc_dagster.assets import OWNERS
from tqc_dagster.assets.metadata import column_schema, counts, counts_dict, markdown, sample_metadata
from tqc_dagster.checks import check_spec, schema_check, schema_spec
from tqc_dagster.config import TqcConfig
from tqc_dagster.core.batch_outputs import judgments_for_model, read_records
from tqc_dagster.core.judgments import QUARANTINE_REASONS, Thresholds, process
from tqc_dagster.core.manifests import MANIFEST_NAME, manifest_comparison, total_records
from tqc_dagster.partitions import FOLLOW_UPSTREAM, both_models_of_a_judge_version, split_key
from tqc_dagster.stores import input_files, join, parent, store_for
from tqc_dagster.schemas import JudgeRecords, QuarantinedJudgments, RawJudgments, Samples

GROUP = "ingest"
RECORDS = "judge_records"
RAW = "raw_judgments"
PROCESSED = "processed_samples"
QUARANTINED = "quarantined_judgments"


def read_manifests(store, files: list[str]) -> dict[str, int | None]:
    """totalRecordCount of each job folder's manifest (None where there is none)."""
    totals = {}
    for folder in sorted({parent(uri) for uri in files}):
        manifest = join(folder, MANIFEST_NAME)
        totals[folder] = total_records(store.read_text(manifest)) if store.exists(manifest) else None
    return totals


def build_ingest_assets(config: TqcConfig, partitions: dg.PartitionsDefinition, judge_versions: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    thresholds = Thresholds(simple=config.labels.simple, complex=config.labels.complex)
    max_rate = config.checks.max_quarantine_rate
    translation_ids = sorted(model.translation_id for model in config.models.values())

    @dg.asset(
        name=RECORDS,
        group_name=GROUP,
        owners=OWNERS[GROUP],
        partitions_def=judge_versions,
        description="Every non-blank line of a judge version's batch output files, read once for all models: "
        "record id, source, each model's translation, the decoded judge array, stop reason, errors, tokens.",
        check_specs=[
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
        metadata=column_schema(JudgeRecords),
    )
    def judge_records(context: dg.AssetExecutionContext):
        judge_version = context.partition_key
        files = input_files(config, judge_version)
        store = store_for(files[0], config.s3)
        read = read_records(files, translation_ids, store.local_copy)
        records = read.records
        manifests = manifest_comparison(records, read_manifests(store, files))
        yield dg.Output(
            records,
            metadata={
                "files": len(files),
                "lines_read": records.height,
                "blank_lines": read.blank_lines,
                "parse_errors": dg.MetadataValue.json(counts_dict(records.filter(pl.col("parse_error").is_not_null()), "parse_error")),
                "preview": markdown(records.drop("judge_entries", "translations", "excerpt")),
            },
        )
        yield schema_check(JudgeRecords, records, RECORDS)
        yield dg.AssetCheckResult(
            asset_key=RECORDS,
            check_name="manifest_totals",
            passed=bool(manifests.get_column("matches").all()),
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"folders": markdown(manifests, 50)},
        )

    @dg.asset(
        name=RAW,
        group_name=GROUP,
        owners=OWNERS[GROUP],
        automation_condition=FOLLOW_UPSTREAM,
        partitions_def=partitions,
        ins={RECORDS: dg.AssetIn(partition_mapping=both_models_of_a_judge_version())},
        description="What the judge's batch output files say about this model's translations, one row per "
        "non-blank line, as found and not yet validated.",
        check_specs=[schema_spec(RAW, RawJudgments, partitions)],
        metadata=column_schema(RawJudgments),
    )
    def raw_judgments(context: dg.AssetExecutionContext, judge_records: pl.DataFrame):
        judge_version, model = split_key(context.partition_key)
        raw = judgments_for_model(judge_records, judge_version, model, config.models[model].translation_id)
        yield dg.Output(
            raw,
            metadata={
                "rows": raw.height,
                "parse_errors": dg.MetadataValue.json(counts_dict(raw.filter(pl.col("parse_error").is_not_null()), "parse_error")),
                "preview": markdown(raw.drop("scores", "excerpt")),
            },
        )
        yield schema_check(RawJudgments, raw, RAW)

    @dg.multi_asset(
        outs={
            PROCESSED: dg.AssetOut(
                group_name=GROUP,
                owners=OWNERS[GROUP],
                automation_condition=FOLLOW_UPSTREAM,
                description="One valid sample per (judge_version, record, model) with every column of the data "
                "contract: scores, lowest criterion, score bucket, target model and label.",
                metadata=column_schema(Samples),
            ),
            QUARANTINED: dg.AssetOut(
                group_name=GROUP,
                owners=OWNERS[GROUP],
                automation_condition=FOLLOW_UPSTREAM,
                description="One row per rejected (record, model) with a reason code, the source file and line.",
                metadata=column_schema(QuarantinedJudgments),
            ),
        },
        ins={RAW: dg.AssetIn()},
        partitions_def=partitions,
        check_specs=[
            schema_spec(PROCESSED, Samples, partitions),
            schema_spec(QUARANTINED, QuarantinedJudgments, partitions),
            check_spec(
                "accounting",
                PROCESSED,
                "Every non-blank line x model is a valid sample, a quarantined row or a duplicate: "
                "nothing is dropped silently.",
                partitions,
            ),
            check_spec(
                "quarantine_rate",
                PROCESSED,
                f"At most {max_rate:.0%} of (record, model) pairs are quarantined "
                "(checks.max_quarantine_rate); more means the input or the parser is broken, so these samples "
                "feed nothing downstream.",
                partitions,
            ),
        ],
    )
    def judged_samples(context: dg.AssetExecutionContext, raw_judgments: pl.DataFrame):
        samples, quarantined, accounting = process(raw_judgments, thresholds)
        by_reason = counts_dict(quarantined, "reason")
        yield dg.Output(
            samples,
            output_name=PROCESSED,
            metadata={**sample_metadata(samples), "duplicates": accounting.duplicates},
        )
        yield dg.Output(
            quarantined,
            output_name=QUARANTINED,
            metadata={
                "rows": quarantined.height,
                "by_reason": dg.MetadataValue.json(by_reason),
                "reasons": markdown(counts(quarantined, "reason"), len(QUARANTINE_REASONS)),
                "preview": markdown(quarantined),
            },
        )
        yield schema_check(Samples, samples, PROCESSED)
        yield schema_check(QuarantinedJudgments, quarantined, QUARANTINED)
        yield dg.AssetCheckResult(
            asset_key=PROCESSED,
            check_name="accounting",
            passed=accounting.balanced,
            description=None
            if accounting.balanced
            else f"{accounting.lines - accounting.valid - accounting.quarantined - accounting.duplicates} lines are neither "
            "a sample, a quarantined row nor a duplicate: rows were lost between raw_judgments and here (a bug).",
            metadata={
                "lines": accounting.lines,
                "valid": accounting.valid,
                "quarantined": accounting.quarantined,
                "duplicates": accounting.duplicates,
            },
        )
        yield dg.AssetCheckResult(
            asset_key=PROCESSED,
            check_name="quarantine_rate",
            passed=accounting.quarantine_rate <= max_rate,
            description=None
            if accounting.quarantine_rate <= max_rate
            else f"{accounting.quarantine_rate:.1%} of (record, model) pairs quarantined, above checks.max_quarantine_rate "
            f"{max_rate:.1%}. Look at the reasons in quarantined_judgments (most often: {next(iter(sorted(by_reason, key=by_reason.get, reverse=True)), 'none')}); "
            "fix the input or raise the threshold in the config if this input is known to be that noisy.",
            metadata={
                "quarantine_rate": dg.MetadataValue.float(round(accounting.quarantine_rate, 6)),
                "max_quarantine_rate": dg.MetadataValue.float(max_rate),
                "by_reason": dg.MetadataValue.json(by_reason),
            },
        )

    return [judge_records, raw_judgments, judged_samples]
