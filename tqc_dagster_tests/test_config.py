import copy
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from tqc_dagster.cli import main
from tqc_dagster.config import DEFAULT_CONFIG_PATH, DEFAULT_SYSTEM_PROMPT, ConfigError, load_config, probe_writable
from tqc_dagster.stores import input_files

VALID = {
    "storage_root": "lake",
    "judge_versions": {"v1": {"judge_model": "m", "input": "in/*/*.jsonl.out"}},
    "models": {"model_a": {"translation_id": 1, "name": "a"}, "model_b": {"translation_id": 2, "name": "b"}},
}


def write(tmp_path: Path, config) -> Path:
    path = tmp_path / "tqc.yaml"
    path.write_text(config if isinstance(config, str) else yaml.safe_dump(config))
    return path


def error_of(path: Path) -> str:
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    return str(raised.value)


def with_value(config: dict, key: str | tuple[str, ...], value) -> dict:
    """A deep copy of `config` with the key at `key` (dotted, or its parts) set to `value`, sections made as needed."""
    config = copy.deepcopy(config)
    *sections, leaf = key.split(".") if isinstance(key, str) else key
    folder = config
    for section in sections:
        folder = folder.setdefault(section, {})
    folder[leaf] = value
    return config


def key_error(tmp_path: Path, dotted: str, value) -> str:
    """The message of a config whose `dotted` key holds `value`; it must name the file."""
    path = write(tmp_path, with_value(VALID, dotted, value))
    message = error_of(path)
    assert str(path) in message
    return message


def test_relative_paths_resolve_against_the_config_folder(tmp_path):
    config = load_config(write(tmp_path, VALID))
    assert config.storage_root == str(tmp_path / "lake")
    assert config.judge_versions["v1"].input == str(tmp_path / "in/*/*.jsonl.out")
    assert config.labels.simple == 3.0 and config.labels.complex == 4.0


def test_s3_and_absolute_paths_are_kept(tmp_path):
    config = load_config(write(tmp_path, {**VALID, "storage_root": "s3://bucket/lake"}))
    assert config.storage_root == "s3://bucket/lake"


def test_missing_key_names_the_key_and_the_file(tmp_path):
    path = write(tmp_path, {k: v for k, v in VALID.items() if k != "storage_root"})
    message = error_of(path)
    assert str(path) in message and "storage_root: missing key" in message


def test_unknown_key_names_the_key_and_the_file(tmp_path):
    path = write(tmp_path, {**VALID, "storage_rot": "x"})
    message = error_of(path)
    assert str(path) in message and "storage_rot: unknown key" in message


def test_nested_unknown_key_is_named_with_its_path(tmp_path):
    config = {**VALID, "judge_versions": {"v1": {"judge_model": "m", "inptu": "x"}}}
    message = error_of(write(tmp_path, config))
    assert "judge_versions.v1.inptu: unknown key" in message
    assert "judge_versions.v1.input: missing key" in message


def test_translation_ids_must_be_distinct(tmp_path):
    models = {"model_a": {"translation_id": 1, "name": "a"}, "model_b": {"translation_id": 1, "name": "b"}}
    assert "distinct" in error_of(write(tmp_path, {**VALID, "models": models}))


def test_not_yaml_and_missing_file(tmp_path):
    assert "not valid YAML" in error_of(write(tmp_path, "a: [1, 2"))
    assert "config file not found" in error_of(tmp_path / "nope.yaml")


def test_glob_matching_nothing_names_the_key_and_the_file(tmp_path):
    path = write(tmp_path, VALID)
    with pytest.raises(ConfigError) as raised:
        input_files(load_config(path), "v1")
    assert "judge_versions.v1.input matches no file" in str(raised.value) and str(path) in str(raised.value)


def test_tqc_run_stops_on_a_glob_matching_nothing(tmp_path, isolated_env):
    path = write(tmp_path, VALID)
    result = CliRunner().invoke(main, ["run", "--config", str(path)])
    assert result.exit_code == 1
    assert "judge_versions.v1.input matches no file" in result.output


def test_tqc_run_stops_on_a_bad_config(tmp_path, isolated_env):
    path = write(tmp_path, {**VALID, "extra": 1})
    result = CliRunner().invoke(main, ["run", "--config", str(path)])
    assert result.exit_code == 1 and "extra: unknown key" in result.output


def test_tqc_config_environment_variable_names_the_file(tmp_path, monkeypatch):
    path = write(tmp_path, {**VALID, "storage_root": "elsewhere"})
    monkeypatch.setenv("TQC_CONFIG", str(path))
    assert load_config().storage_root == str(tmp_path / "elsewhere")


def test_the_shipped_config_is_valid(monkeypatch):
    monkeypatch.delenv("TQC_CONFIG", raising=False)
    config = load_config()
    assert config.config_path == str(DEFAULT_CONFIG_PATH)
    assert config.judge_version_names == ["v1", "v2"] and config.model_names == ["model_a", "model_b"]


# --- every value is checked at load -------------------------------------------------------------------------


def test_storage_root_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "lake").write_text("not a folder")
    message = error_of(write(tmp_path, VALID))
    assert "storage_root: cannot write to" in message and "is not a folder" in message
    with pytest.raises(OSError):
        probe_writable(tmp_path / "lake")
    with pytest.raises(OSError):  # a folder below a file
        probe_writable(tmp_path / "lake" / "below")


def test_storage_root_on_a_read_only_location_is_refused_even_for_root(tmp_path):
    """sysfs refuses new files to root too, where os.access would say yes."""
    with pytest.raises(OSError):
        probe_writable(Path("/sys/tqc-lake"))
    message = error_of(write(tmp_path, {**VALID, "storage_root": "/sys/tqc-lake"}))
    assert "storage_root: cannot write to /sys/tqc-lake" in message


def test_a_missing_storage_root_is_probed_in_its_nearest_folder_and_not_created(tmp_path):
    config = load_config(write(tmp_path, {**VALID, "storage_root": "not/yet/lake"}))
    assert config.storage_root == str(tmp_path / "not/yet/lake")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tqc.yaml"]  # nothing created, the probe file removed


def test_s3_storage_root_is_not_probed_at_load(tmp_path):
    """No network at load: an S3 root is checked when a run first writes to it."""
    assert load_config(write(tmp_path, {**VALID, "storage_root": "s3://no-such-bucket-anywhere/lake"})).storage_root.startswith("s3://")


def test_bedrock_cache_dir_is_probed_only_for_the_bedrock_backend(tmp_path):
    config = {**VALID, "bedrock": {"cache_dir": "/sys/tqc-cache"}}
    assert load_config(write(tmp_path, config)).bedrock.cache_dir == "/sys/tqc-cache"
    message = error_of(write(tmp_path, {**config, "synthesis": {"backend": "bedrock"}}))
    assert "bedrock.cache_dir: cannot write to /sys/tqc-cache" in message


@pytest.mark.parametrize(
    "dotted, value, expected",
    [
        ("storage_root", "gs://bucket/lake", "only local paths and s3://bucket/"),
        ("storage_root", "s3://", "only local paths and s3://bucket/"),
        ("judge_versions.v1.input", "https://example.com/*.jsonl.out", "only local paths and s3://bucket/"),
        ("bedrock.cache_dir", "s3://bucket/cache", "must be a local folder"),
        ("storage_root", "lake\0", "NUL"),
    ],
)
def test_paths_are_local_or_s3(tmp_path, dotted, value, expected):
    message = key_error(tmp_path, dotted, value)
    assert f"{dotted}: " in message and expected in message


@pytest.mark.parametrize("name", ["v1|x", "v1.5", "c35-v2", "v 1", "_v1", "", "v" * 65, "vé"])
def test_unsafe_judge_version_names_are_refused(tmp_path, name):
    """Judge versions name partitions (`v1|model_a`), files and Dagster sensors (`batch_outputs_<name>`)."""
    config = {**VALID, "judge_versions": {name: VALID["judge_versions"]["v1"]}}
    assert f"judge_versions.{name}: bad name" in error_of(write(tmp_path, config))


@pytest.mark.parametrize("name", ["model|a", "model/a", "-model", ".hidden", "m" * 65, "mödel"])
def test_unsafe_model_names_are_refused(tmp_path, name):
    config = {**VALID, "models": {name: {"translation_id": 1, "name": "a"}}}
    assert f"models.{name}: bad name" in error_of(write(tmp_path, config))


def test_model_names_may_hold_dots_and_dashes(tmp_path):
    config = {**VALID, "models": {"nova-lite.v1": {"translation_id": 1, "name": "a"}}}
    assert load_config(write(tmp_path, config)).model_names == ["nova-lite.v1"]


@pytest.mark.parametrize(
    "text, dotted",
    [
        ("judge_versions: {1: {judge_model: m, input: x}}", "judge_versions.1: Input should be a valid string"),
        ("models: {null: {translation_id: 1, name: a}}", "models.None: Input should be a valid string"),
        ("1: x", "1: Keys should be strings"),
        ("models: [model_a, model_b]", "models: Input should be a valid dictionary"),
        ("labels: [3.0, 4.0]", "labels: Input should be a valid dictionary"),
    ],
)
def test_yaml_keys_and_shapes_are_named(tmp_path, text, dotted):
    base = yaml.safe_dump({k: v for k, v in VALID.items() if not text.startswith(k)})
    assert dotted in error_of(write(tmp_path, base + text + "\n"))


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"", "got an empty file"),
        (b"# only a comment\n", "got an empty file"),
        (b"42\n", "got int"),
        (b"- storage_root\n", "got list"),
        (b"storage_root: \xff\xfe lake\n", "not UTF-8 text"),
        (b"split: {seed: 1" + b"0" * 5000 + b"}\n", "not valid YAML"),
        (b"[" * 5000 + b"]" * 5000, "not valid YAML"),
    ],
)
def test_files_that_are_not_a_yaml_mapping(tmp_path, content, expected):
    path = tmp_path / "tqc.yaml"
    path.write_bytes(content)
    message = error_of(path)
    assert message.startswith(f"{path}: ") and expected in message


def test_a_folder_as_config_file(tmp_path):
    assert "cannot read the config file" in error_of(tmp_path)


@pytest.mark.parametrize(
    "dotted, template, expected",
    [
        ("export.user_template", "{source", "broken template"),
        ("export.user_template", "{source}}", "broken template"),
        ("export.assistant_template", "<think>{thought}</think> {ratings}", "unknown field {ratings}"),
        ("export.system_prompts.simple", "Judge {target_language}", "unknown field {target_language}"),
        ("export.system_prompts.complex", "Judge {}", "unknown field {}"),
        ("export.system_prompts.complex", "Judge {0}", "unknown field {0}"),
        ("export.user_template", "{source.title}", "unknown field {source.title}"),
        ("export.user_template", "  ", "must not be empty"),
    ],
)
def test_bad_export_templates_are_refused_at_load(tmp_path, dotted, template, expected):
    message = key_error(tmp_path, dotted, template)
    assert f"{dotted}: {expected}" in message


def test_export_templates_may_use_every_field_export_fills_and_literal_braces(tmp_path):
    templates = {
        "system_prompts": {"simple": "{target_lang} {criteria} {product_category}"},
        "user_template": "{{literal}} {source} {translation} {target_lang} {product_category}",
        "assistant_template": "{thought} {scores} {all_scores}",
    }
    export = load_config(write(tmp_path, {**VALID, "export": templates})).export
    assert export.system_prompts == {"simple": templates["system_prompts"]["simple"], "complex": DEFAULT_SYSTEM_PROMPT}


def test_tokens_per_minute_must_hold_one_request(tmp_path):
    """One request reserves its input estimate plus max_tokens against the tokens quota."""
    message = key_error(tmp_path, "bedrock", {"tokens_per_minute": 2048, "max_tokens": 2048})
    assert "bedrock.tokens_per_minute: must be above bedrock.max_tokens (2048)" in message
    assert load_config(write(tmp_path, with_value(VALID, "bedrock", {"tokens_per_minute": 2049, "max_tokens": 2048})))


@pytest.mark.parametrize("value", [1e-9, 0, -1, 1e7, float("inf"), float("nan")])
def test_requests_per_minute_has_a_sane_range(tmp_path, value):
    assert "bedrock.requests_per_minute: Input should be" in key_error(tmp_path, "bedrock.requests_per_minute", value)


@pytest.mark.parametrize(
    "dotted, value",
    [
        ("labels.simple", float("nan")),
        ("labels.complex", float("inf")),
        ("checks.max_quarantine_rate", float("nan")),
        ("agreement.min_kappa", float("-inf")),
        ("bedrock.timeout_s", float("inf")),
        ("split.test_ratio", float("nan")),
        ("bedrock.prices.m.input", float("nan")),
    ],
)
def test_nan_and_infinities_are_refused(tmp_path, dotted, value):
    assert f"{dotted}: Input should be a finite number" in key_error(tmp_path, dotted, value)


@pytest.mark.parametrize("dotted, value", [("labels.simple", -0.5), ("labels.complex", 5.5)])
def test_label_thresholds_are_on_the_score_scale(tmp_path, dotted, value):
    assert f"{dotted}: Input should be" in key_error(tmp_path, dotted, value)


@pytest.mark.parametrize(
    "dotted, value",
    [
        ("judge_versions.v1.judge_model", ""),
        ("judge_versions.v1.input", "  "),
        ("judge_versions.v1.judge_model", ["m"]),
        ("models.model_a.name", ""),
        ("models.model_a.translation_id", 0),
        ("models.model_a.translation_id", 1.5),
        ("models.model_a.translation_id", "one"),
        ("storage_root", ""),
        ("storage_root", None),
        ("synthesis.min_samples", 0),
        ("synthesis.samples_per_request", 0),
        ("synthesis.max_requests_per_group", -1),
        ("synthesis.backend", "gpt"),
        ("synthesis.seed", 0.5),
        ("split.seed", 2**64),
        ("balance.seed", "zero"),
        ("balance.max_per_category", 0),
        ("balance.max_synthetic_share", 0.0),
        ("balance.max_synthetic_share", 1.5),
        ("checks.min_test_group_samples", 0),
        ("split.test_ratio", 0.0),
        ("split.test_ratio", 1.0),
        ("checks.max_quarantine_rate", 1.5),
        ("agreement.min_kappa", -2),
        ("agreement.judges", ["v1"]),
        ("consensus.policy", "all"),
        ("s3.endpoint_url", "minio:9000"),
        ("s3.region", ""),
        ("bedrock.region", "us west 2"),
        ("bedrock.model_id", ""),
        ("bedrock.endpoint_url", ""),
        ("bedrock.max_workers", 0),
        ("bedrock.max_attempts", 0),
        ("bedrock.max_attempts", 10_000),
        ("bedrock.timeout_s", 0),
        ("bedrock.timeout_s", 1e12),
        ("bedrock.max_tokens", 0),
        ("bedrock.tokens_per_minute", 0),
        ("bedrock.prices.m.output", -1),
        ("export.system_prompts.medium", "x"),
    ],
)
def test_every_field_has_a_type_and_a_range(tmp_path, dotted, value):
    assert f"\n  {dotted}" in key_error(tmp_path, dotted, value)  # a line of the message starts with the key


def test_translation_ids_clash_names_both_keys(tmp_path):
    message = key_error(tmp_path, "models.model_b.translation_id", 1)
    assert "models.model_a.translation_id and models.model_b.translation_id are both 1" in message
