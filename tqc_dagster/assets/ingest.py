"""Ingest: batch outputs -> judge_records (per judge version) -> raw_judgments -> processed_samples + quarantined_judgments."""


import dagster as dg
import polars as pl

from tqc_dagster.assets import OWNERS, storage_kinds
from tqc_dagster.assets.metadata import column_schema, counts, counts_dict, sample_metadata, table_metadata
from tqc_dagster.config import TqcConfig
from tqc_dagster.core.batch_outputs import judgments_for_model, read_records
from tqc_dagster.core.judgments import QUARANTINE_REASONS, process
from tqc_dagster.core.manifests import MANIFEST_NAME, total_records
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
    thresholds = config.labels
    translation_ids = sorted(model.translation_id for model in config.models.values())
    kinds = storage_kinds(config.storage_root)

    @dg.asset(
        name=RECORDS,
        group_name=GROUP,
        kinds=kinds,
        owners=OWNERS[GROUP],
        partitions_def=judge_versions,
        description="Every non-blank line of a judge version's batch output files, read once for all models: "
        "record id, source, each model's translation, the decoded judge array, stop reason, errors, tokens.",
        metadata=column_schema(JudgeRecords),
    )
    def judge_records(context: dg.AssetExecutionContext):
        judge_version = context.partition_key
        files = input_files(config, judge_version)
        store = store_for(files[0], config.s3)
        read = read_records(files, translation_ids, store.local_copy, store.modified)
        records = read.records
        for uri, problem in read.skipped.items():
            context.log.warning(f"judge_versions.{judge_version}.input matches {uri}, {problem}: not read")
        yield dg.Output(
            records,
            metadata={
                "files": len(files),
                "dagster/row_count": records.height,
                "blank_lines": read.blank_lines,
                "not_read": dg.MetadataValue.json(read.skipped),
                "parse_errors": dg.MetadataValue.json(counts_dict(records.filter(pl.col("parse_error").is_not_null()), "parse_error")),
                "preview": table_metadata(records.drop("judge_entries", "translations", "excerpt")),
            },
        )

    @dg.asset(
        name=RAW,
        group_name=GROUP,
        kinds=kinds,
        owners=OWNERS[GROUP],
        automation_condition=FOLLOW_UPSTREAM,
        partitions_def=partitions,
        ins={RECORDS: dg.AssetIn(partition_mapping=both_models_of_a_judge_version())},
        description="What the judge's batch output files say about this model's translations, one row per "
        "non-blank line, as found and not yet validated.",
        metadata=column_schema(RawJudgments),
    )
    def raw_judgments(context: dg.AssetExecutionContext, judge_records: pl.DataFrame):
        judge_version, model = split_key(context.partition_key)
        raw = judgments_for_model(judge_records, judge_version, model, config.models[model].translation_id)
        yield dg.Output(
            raw,
            metadata={
                "dagster/row_count": raw.height,
                "parse_errors": dg.MetadataValue.json(counts_dict(raw.filter(pl.col("parse_error").is_not_null()), "parse_error")),
                "preview": table_metadata(raw.drop("scores", "excerpt")),
            },
        )

    @dg.multi_asset(
        name=PROCESSED,  # the step is named after its main output
        outs={
            PROCESSED: dg.AssetOut(
                group_name=GROUP,
                kinds=kinds,
                owners=OWNERS[GROUP],
                automation_condition=FOLLOW_UPSTREAM,
                description="One valid sample per (judge_version, record, model) with every column of the data "
                "contract: scores, lowest criterion, score bucket, target model and label.",
                metadata=column_schema(Samples),
            ),
            QUARANTINED: dg.AssetOut(
                group_name=GROUP,
                kinds=kinds,
                owners=OWNERS[GROUP],
                automation_condition=FOLLOW_UPSTREAM,
                description="One row per rejected (record, model) with a reason code, the source file and line.",
                metadata=column_schema(QuarantinedJudgments),
            ),
        },
        ins={RAW: dg.AssetIn()},
        partitions_def=partitions,
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
                "dagster/row_count": quarantined.height,
                "quarantine_rate": dg.MetadataValue.float(round(accounting.quarantine_rate, 6)),
                "by_reason": dg.MetadataValue.json(by_reason),
                "reasons": table_metadata(counts(quarantined, "reason"), len(QUARANTINE_REASONS)),
                "preview": table_metadata(quarantined),
            },
        )

    return [judge_records, raw_judgments, judged_samples]
