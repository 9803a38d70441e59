"""The one partitioning of the pipeline: judge_version x model, both taken from the config."""

import warnings

import dagster as dg

from tqc_dagster.config import TqcConfig

JUDGE_VERSION = "judge_version"
MODEL = "model"


def judge_version_partitions(config: TqcConfig) -> dg.StaticPartitionsDefinition:
    return dg.StaticPartitionsDefinition(config.judge_version_names)


def sample_partitions(config: TqcConfig) -> dg.MultiPartitionsDefinition:
    """Keys look like `v1|model_a` (dimensions are ordered by name)."""
    return dg.MultiPartitionsDefinition(
        {JUDGE_VERSION: judge_version_partitions(config), MODEL: model_partitions(config)}
    )


def partition_key(judge_version: str, model: str) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({JUDGE_VERSION: judge_version, MODEL: model})


def split_key(key: str | dg.MultiPartitionKey) -> tuple[str, str]:
    """(judge_version, model) of a `v1|model_a` key."""
    if isinstance(key, dg.MultiPartitionKey):
        dims = key.keys_by_dimension
        return dims[JUDGE_VERSION], dims[MODEL]
    judge_version, model = key.split("|")
    return judge_version, model


def model_partitions(config: TqcConfig) -> dg.StaticPartitionsDefinition:
    return dg.StaticPartitionsDefinition(config.model_names)


def every_judge_version_of_a_model() -> dg.PartitionMapping:
    """Maps a model partition onto that model's partition of every judge version (a Dagster beta class)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        return dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name=MODEL)


def same_model_every_judge_version() -> dg.PartitionMapping:
    """From a judge_version x model partition to the same model's partitions of every judge version."""
    return dg.MultiPartitionMapping(
        {
            JUDGE_VERSION: dg.DimensionPartitionMapping(JUDGE_VERSION, dg.AllPartitionMapping()),
            MODEL: dg.DimensionPartitionMapping(MODEL, dg.IdentityPartitionMapping()),
        }
    )


def both_models_of_a_judge_version() -> dg.PartitionMapping:
    """Maps a judge-version partition onto every model partition of that version (a Dagster beta class)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        return dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name=JUDGE_VERSION)


# Every asset downstream of judge_records follows its inputs: once they are updated (and none is
# missing or in progress) and every blocking check of its inputs passed, the automation sensor
# materializes it. `tqc run` does the same explicitly (blocking.py). all_deps_blocking_checks_passed
# is true when any one mapped partition of a dep passed, so a fan-in (judge_agreement reads every
# judge version) also needs "no mapped partition of any dep failed a blocking check".
ANY_DEP_FAILED_A_BLOCKING_CHECK = dg.AutomationCondition.any_deps_match(
    dg.AutomationCondition.any_checks_match(dg.AutomationCondition.check_failed(), blocking_only=True)
)
FOLLOW_UPSTREAM = (
    dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed() & ~ANY_DEP_FAILED_A_BLOCKING_CHECK
).with_label("eager, once upstream blocking checks passed")
