"""Property tests of the config loader: any value at any key gives a valid config or a ConfigError naming the file and the key.

Input globs match no file here on purpose: a glob that matches nothing is checked when a run needs it, not at load.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings, strategies as st
from pydantic import BaseModel

from tqc_dagster.config import JudgeVersion, TokenPrice, TqcConfig, TranslationModel, load_config
from tqc_dagster_tests.test_config import with_value

PRICED = "amazon.nova-lite-v1:0"
BASE = {
    "storage_root": "lake",
    "judge_versions": {
        "v1": {"judge_model": "anthropic.claude-3-5-sonnet-20241022-v2:0", "input": "raw/c35-v2/*/*/*.jsonl.out"},
        "v2": {"judge_model": "us.anthropic.claude-3-7-sonnet-20250219-v1:0", "input": "raw/c37/*/*/*.jsonl.out"},
    },
    "models": {"model_a": {"translation_id": 1, "name": PRICED}, "model_b": {"translation_id": 2, "name": "b"}},
    "bedrock": {"prices": {PRICED: {"input": 0.06, "output": 0.24}}},
}
# Every leaf of the model, and the mappings whose keys are data (replaced whole); parts where a key holds a dot.
KEYS = [
    "storage_root",
    "judge_versions", "judge_versions.v1.judge_model", "judge_versions.v1.input", "judge_versions.v2.input",
    "judge_versions.v1.judge_from", "judge_versions.v1.batch",
    "models", "models.model_a.translation_id", "models.model_a.name", "models.model_b.translation_id",
    "labels.simple", "labels.complex",
    "checks.max_quarantine_rate", "checks.min_test_group_samples",
    "s3.endpoint_url", "s3.region",
    "synthesis.backend", "synthesis.min_samples", "synthesis.seed", "synthesis.samples_per_request", "synthesis.max_requests_per_group",
    "synthesis.on_shortfall", "synthesis.verify_with_judge", "synthesis.judge_model", "synthesis.batch",
    "bedrock.region", "bedrock.model_id", "bedrock.requests_per_minute", "bedrock.max_tokens", "bedrock.tokens_per_minute",
    "bedrock.max_workers", "bedrock.max_attempts", "bedrock.timeout_s", "bedrock.endpoint_url", "bedrock.cache_dir",
    "bedrock.prices", ("bedrock", "prices", PRICED, "input"), ("bedrock", "prices", PRICED, "output"), "bedrock.batch_prices",
    "split.test_ratio", "split.seed",
    "balance.max_per_category", "balance.max_synthetic_share", "balance.seed",
    "agreement.judges", "agreement.min_kappa",
    "consensus.policy",
    "export.system_prompts", "export.system_prompts.simple", "export.system_prompts.complex", "export.user_template", "export.assistant_template", "export.license", "export.seed",
]
SPECIAL = [
    float("nan"), float("inf"), float("-inf"), None, True, False, 0, -1, 1, 2**63, -(10**30), 10**400, 1e-9, 1e308, 0.5, -0.0,
    "", " ", "\0", "{", "}", "{x}", "{source", "{}", "{0}", "{source}", "v1|x", "s3://", "s3://b/k", "gs://b/k", "/sys/x",
    "http://127.0.0.1:9000", "bedrock", "label", "ünïcödé ✓ 中文", "x" * 5000,
]
SCALARS = st.one_of(
    st.sampled_from(SPECIAL),
    st.integers(),
    st.floats(),
    st.text(max_size=30),
    st.text(alphabet="{}|:/ ._-aZ09", max_size=12),
    st.text(min_size=300, max_size=1000),
    st.binary(max_size=8),
)
VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.one_of(st.text(max_size=8), st.integers(), st.none()), children, max_size=3),
    max_leaves=6,
)
BAD_NAMES = st.one_of(
    st.sampled_from(["v1|x", "a b", "-x", ".x", "_x", "x" * 65, "ü", "", "x/y", "x\ny", "v1.5", "c35-v2", "model.a"]),
    st.text(max_size=70),
    st.integers(),
    st.none(),
)
SETTINGS = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def write(folder: Path, config: dict) -> Path:
    path = folder / "tqc.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    return path


def loads_or_names(path: Path, *keys: str) -> TqcConfig | None:
    """The config, or None when load_config raised a ConfigError naming the file and every one of `keys`."""
    try:
        return load_config(path)
    except Exception as error:  # anything but a ConfigError naming the key fails the test
        assert type(error).__name__ == "ConfigError", f"{type(error).__name__}: {error}"
        for part in (str(path), *keys):
            assert part in str(error), f"{part!r} not named in:\n{error}"
        return None


def dotted(key: str | tuple[str, ...]) -> str:
    return key if isinstance(key, str) else ".".join(key)


def leaves(model: type[BaseModel], prefix: str = "") -> set[str]:
    """Dotted names of a model's fields, nested models expanded."""
    names = set()
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names |= leaves(annotation, f"{prefix}{name}.")
        elif not field.exclude:
            names.add(prefix + name)
    return names


def test_the_key_list_names_every_field_and_the_base_config_is_valid(tmp_path):
    every = leaves(TqcConfig) | leaves(JudgeVersion, "judge_versions.v1.") | leaves(TranslationModel, "models.model_a.")
    every |= leaves(TokenPrice, f"bedrock.prices.{PRICED}.") | {"export.system_prompts.simple", "export.system_prompts.complex"}
    assert every <= {dotted(key) for key in KEYS}, sorted(every - {dotted(key) for key in KEYS})
    assert load_config(write(tmp_path, BASE)).judge_version_names == ["v1", "v2"]


@SETTINGS
@given(key=st.sampled_from(KEYS), value=VALUES)
def test_any_value_at_any_key_loads_or_names_the_key(tmp_path, key, value):
    loads_or_names(write(tmp_path, with_value(BASE, key, value)), dotted(key))


@SETTINGS
@given(section=st.sampled_from(["judge_versions", "models"]), name=BAD_NAMES)
def test_any_judge_version_or_model_name_loads_or_is_named(tmp_path, section, name):
    entry = {"judge_model": "m", "input": "raw/*.jsonl.out"} if section == "judge_versions" else {"translation_id": 3, "name": "c"}
    path = write(tmp_path, {**BASE, section: {**BASE[section], name: entry}})
    read = list(yaml.safe_load(path.read_text())[section])[-1]  # as YAML reads it back: a NEL (\x85) becomes a space
    loaded = loads_or_names(path, f"{section}.{read}")
    assert loaded is None or read in getattr(loaded, section)


SCORES = st.floats(min_value=0.0, max_value=5.0)
NAMES = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_]{0,12}", fullmatch=True)
FIELDS = st.sampled_from(["{source}", "{translation}", "{target_lang}", "{product_category}", "{thought}", "{criteria}", "{scores}", "{all_scores}"])
TEMPLATES = st.lists(st.one_of(FIELDS, st.text(alphabet="abc <>/#\n", min_size=1, max_size=8), st.just("{{x}}")), min_size=1, max_size=6).map("".join).filter(str.strip)
VALID = st.fixed_dictionaries(
    {
        "storage_root": st.sampled_from(["lake", "data/lake", "s3://bucket/lake"]),
        "judge_versions": st.dictionaries(NAMES, st.fixed_dictionaries({"judge_model": st.just("m"), "input": st.just("raw/*.jsonl.out")}), min_size=1, max_size=1),
        "models": st.just(BASE["models"]),
        "labels": st.fixed_dictionaries({"simple": SCORES, "complex": SCORES}),
        "checks": st.fixed_dictionaries({"max_quarantine_rate": st.floats(0.0, 1.0)}),
        "synthesis": st.fixed_dictionaries({"backend": st.sampled_from(["rules", "bedrock"]), "min_samples": st.integers(1, 10**6), "seed": st.integers(-(2**63), 2**63 - 1)}),
        "bedrock": st.fixed_dictionaries({"requests_per_minute": st.floats(0.01, 1e6), "max_tokens": st.integers(1, 10_000), "tokens_per_minute": st.integers(10_001, 10**9)}),
        "split": st.fixed_dictionaries({"test_ratio": st.floats(0.0, 1.0, exclude_min=True, exclude_max=True), "seed": st.integers(0, 2**63 - 1)}),
        "agreement": st.fixed_dictionaries({"min_kappa": st.floats(-1.0, 1.0)}),
        "export": st.fixed_dictionaries({"user_template": TEMPLATES, "assistant_template": TEMPLATES, "system_prompts": st.fixed_dictionaries({"simple": TEMPLATES})}),
    }
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(config=VALID)
def test_a_valid_config_loads_and_round_trips(tmp_path, config):
    path = write(tmp_path, config)
    loaded = load_config(path)
    assert loaded.labels.simple == config["labels"]["simple"] and loaded.export.user_template == config["export"]["user_template"]
    write(tmp_path, loaded.model_dump(mode="json", exclude={"config_path"}))
    assert load_config(path) == loaded
