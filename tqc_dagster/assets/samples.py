"""From processed samples to training data: synthetic_samples, trainset / testset, balanced_trainset."""

from dataclasses import replace
from typing import TYPE_CHECKING

import dagster as dg
import polars as pl

from tqc_dagster.assets.ingest import PROCESSED
from tqc_dagster.assets import OWNERS, storage_kinds
from tqc_dagster.assets.metadata import column_schema, counts, sample_metadata, table_metadata
from tqc_dagster.assets.synthesis_batch import bedrock_backend, prefill_from_batch, round_zero
from tqc_dagster.partitions import FOLLOW_UPSTREAM, same_model_every_judge_version, split_key
from tqc_dagster.config import TqcConfig
from tqc_dagster.core.balance import balance
from tqc_dagster.core.agreement import consensus_mask, removed_by_criterion
from tqc_dagster.core.rubric import JUDGED, SYNTHETIC
from tqc_dagster.core.split import realized_test_share, split_samples
from tqc_dagster.core.synthesis import SynthesisBackend, deficits
from tqc_dagster.core.synthesis.bedrock import NAME as BEDROCK
from tqc_dagster.core.synthesis.rules import RulesBackend
from tqc_dagster.core.synthesis.verify import JudgeVerifier
from tqc_dagster.resources.bedrock import BedrockResource
from tqc_dagster.schemas import Samples

if TYPE_CHECKING:
    from tqc_dagster.bedrock.client import ConverseClient

SYNTHETIC_SAMPLES = "synthetic_samples"
TRAINSET = "trainset"
TESTSET = "testset"
BALANCED = "balanced_trainset"
UNFILLED_GROUPS = "unfilled_groups"  # synthetic_samples metadata: the report rows of the groups left short
UNFILLED_SCHEMA = {"product_category": pl.String, "criterion": pl.Int64, "score_bucket": pl.Int64, "samples": pl.Int64, "needed": pl.Int64,
                   "made": pl.Int64, "unfilled": pl.Int64, "why": pl.String}
UNFILLED_COLUMNS = list(UNFILLED_SCHEMA)


def build_sample_assets(config: TqcConfig, partitions: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    thresholds = config.labels
    synthesis, split, balancing = config.synthesis, config.split, config.balance
    consensus = config.consensus.policy
    prices = config.bedrock.price
    kinds = storage_kinds(config.storage_root)

    def choose_backend(context: dg.AssetExecutionContext, bedrock: dg.ResourceParam[BedrockResource]) -> tuple[SynthesisBackend, "ConverseClient | None", JudgeVerifier | None]:
        """The configured backend, the Bedrock client whose usage it reports (None for rules) and its judge verifier (None when off)."""
        if synthesis.backend == BEDROCK:
            client = bedrock.client(log=context.log.info)
            judge_model = config.verifying_judge(split_key(context.partition_key)[0])
            verifier = JudgeVerifier(bedrock.client(log=context.log.info, model_id=judge_model), thresholds, config.bedrock.max_tokens) if judge_model else None
            return bedrock_backend(config, client, verifier), client, verifier
        return RulesBackend(thresholds), None, None

    @dg.asset(
        name=SYNTHETIC_SAMPLES,
        group_name="synthesis",
        kinds=storage_kinds(config.storage_root, "polars", "bedrock") if synthesis.backend == BEDROCK else kinds,
        owners=OWNERS["synthesis"],
        automation_condition=FOLLOW_UPSTREAM,
        partitions_def=partitions,
        ins={PROCESSED: dg.AssetIn()},
        description=f"Synthetic samples that top up every simple-model group (product_category, criterion, "
        f"score_bucket) below {synthesis.min_samples} samples, made by the `{synthesis.backend}` backend.",
        metadata=column_schema(Samples),
        pool=BEDROCK if synthesis.backend == BEDROCK else None,
    )
    def synthetic_samples(context: dg.AssetExecutionContext, processed_samples: pl.DataFrame, bedrock: dg.ResourceParam[BedrockResource]):
        wanted = deficits(processed_samples, synthesis.min_samples)
        backend, client, verifier = choose_backend(context, bedrock)
        # With synthesis.batch, round 0's answers from batch inference go into the cache first (assets/synthesis_batch.py).
        prefilled = prefill_from_batch(config, context.partition_key, round_zero(config, backend, processed_samples), client.cache, context.log) if synthesis.batch else {}
        output = backend.synthesize(processed_samples, wanted, synthesis.seed)
        usage = client.usage.summary(prices) if client else {}
        # The judge's verdicts, and what its requests cost at the judge model's price.
        verification = {**verifier.summary(), "bedrock": verifier.client.usage.summary(config.bedrock.prices.get(verifier.client.model_id))} if verifier else {}
        made = output.samples
        unfilled = output.report.filter(pl.col("unfilled") > 0)
        yield dg.Output(
            made,
            metadata={
                **sample_metadata(made, chart=False),  # the balance that matters is balanced_trainset's
                "backend": synthesis.backend,
                "groups_topped_up": wanted.height,
                "groups_unfilled": unfilled.height,
                "samples_unfilled": int(unfilled.get_column("unfilled").sum()),
                # every group left short, with the backend's reason and the numbers, in full: the dataset card repeats it
                UNFILLED_GROUPS: dg.MetadataValue.json(unfilled.select(UNFILLED_COLUMNS).to_dicts()),
                "made_per_criterion": table_metadata(counts(made, "criterion"), 10),
                "groups": table_metadata(output.report, 200),
                **({"bedrock": dg.MetadataValue.json(usage)} if usage else {}),
                **({"batch_round": dg.MetadataValue.json(prefilled)} if prefilled else {}),
                **({"judge_verification": dg.MetadataValue.json(verification)} if verification else {}),
            },
        )

    @dg.multi_asset(
        name=TRAINSET,  # the step is named after its main output
        outs={
            TRAINSET: dg.AssetOut(
                group_name="splits",
                kinds=kinds,
                owners=OWNERS["splits"],
                automation_condition=FOLLOW_UPSTREAM,
                description="Judged samples whose normalized source hashes to train, plus synthetic samples "
                "(never a synthetic sample whose source is a test source).",
                metadata=column_schema(Samples),
            ),
            TESTSET: dg.AssetOut(
                group_name="splits",
                kinds=kinds,
                owners=OWNERS["splits"],
                automation_condition=FOLLOW_UPSTREAM,
                description=f"Judged samples whose normalized source hashes to test (test_ratio {split.test_ratio}); no synthetic rows.",
                metadata=column_schema(Samples),
            ),
        },
        # With consensus filtering, the other judge versions' samples of this model come along.
        # Consensus compares with every other judge version of the model that is stored (one being judged is left out).
        ins={
            PROCESSED: dg.AssetIn(partition_mapping=same_model_every_judge_version(), metadata={"allow_missing_partitions": True})
            if consensus != "none"
            else dg.AssetIn(),
            SYNTHETIC_SAMPLES: dg.AssetIn(),
        },
        partitions_def=partitions,
    )
    def train_test_split(context: dg.AssetExecutionContext, processed_samples: pl.DataFrame, synthetic_samples: pl.DataFrame):
        judge_version, _ = split_key(context.partition_key)
        judged = processed_samples.filter(pl.col("judge_version") == judge_version)
        result = split_samples(judged, synthetic_samples, split.test_ratio, split.seed)
        consensus_metadata = {"consensus_policy": consensus}
        if consensus != "none":
            others = [frame for (version,), frame in processed_samples.partition_by("judge_version", as_dict=True).items() if version != judge_version]
            is_judged = result.train.get_column("origin") == JUDGED
            keep = consensus_mask(result.train, others, consensus, thresholds) | ~is_judged
            removed = removed_by_criterion(result.train.filter(is_judged), keep.filter(is_judged))
            result = replace(result, train=result.train.filter(keep))
            consensus_metadata["consensus_removed"] = table_metadata(removed, 20)
            consensus_metadata["consensus_removed_total"] = int(removed.get_column("removed").sum())
        share = realized_test_share(result.train, result.test, ["target_model", "criterion", "label"])
        overall = result.test.height / max(1, result.test.height + result.train.filter(pl.col("origin") != SYNTHETIC).height)
        yield dg.Output(
            result.train,
            output_name=TRAINSET,
            metadata={**sample_metadata(result.train, chart=False), "synthetic_dropped_as_test_sources": result.synthetic_dropped, **consensus_metadata},
        )
        yield dg.Output(
            result.test,
            output_name=TESTSET,
            metadata={
                **sample_metadata(result.test),
                "test_share": dg.MetadataValue.float(round(overall, 4)),
                "test_share_by_group": table_metadata(share, 100),
            },
        )

    @dg.asset(
        name=BALANCED,
        group_name="splits",
        kinds=kinds,
        owners=OWNERS["splits"],
        automation_condition=FOLLOW_UPSTREAM,
        partitions_def=partitions,
        ins={TRAINSET: dg.AssetIn()},
        description="The training set balanced per group (each simple criterion; the complex model as one): the "
        "negatives and as many positives drawn with the seed, judged rows first, synthetic rows at most "
        f"{balancing.max_synthetic_share} of a group (balance.max_synthetic_share).",
        metadata=column_schema(Samples),
    )
    def balanced_trainset(trainset: pl.DataFrame):
        result = balance(trainset, balancing.seed, balancing.max_per_category, balancing.max_synthetic_share)
        yield dg.Output(
            result.balanced,
            metadata={
                **sample_metadata(result.balanced),
                "groups": table_metadata(result.report, 20),
                "total_shortfall": int(result.report.get_column("shortfall").sum()),
                "max_synthetic_share": dg.MetadataValue.float(balancing.max_synthetic_share) if balancing.max_synthetic_share is not None else "none",
                "synthetic_dropped_by_cap": int((result.report.get_column("synthetic_available") - result.report.get_column("synthetic_kept")).sum()),
            },
        )

    return [synthetic_samples, train_test_split, balanced_trainset]
