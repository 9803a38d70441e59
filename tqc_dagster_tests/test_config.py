from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from tqc_dagster.cli import main
from tqc_dagster.config import DEFAULT_CONFIG_PATH, ConfigError, load_config
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
