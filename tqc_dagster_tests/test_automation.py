"""What follows an updated input: the eager automation conditions, evaluated for real on an instance."""

import dagster as dg
from click.testing import CliRunner

from tqc_dagster.cli import main
from tqc_dagster.config import load_config
from tqc_dagster.definitions import build_definitions
from tqc_dagster_tests.conftest import write_config


def test_new_judge_records_pull_both_models_raw_judgments_along(demo_dir, tmp_path, isolated_env):
    config_path = write_config(tmp_path / "project", demo_dir)
    defs = build_definitions(load_config(config_path))
    (tmp_path / "dagster_home").mkdir()  # isolated_env points DAGSTER_HOME here
    with dg.DagsterInstance.get() as instance:
        before = dg.evaluate_automation_conditions(defs=defs, instance=instance)
        assert before.total_requested == 0  # nothing is there to follow yet

        result = CliRunner().invoke(main, ["run", "--config", str(config_path), "--partition", "v1|model_a", "--select", "judge_records"])
        assert result.exit_code == 0, result.output

        after = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=before.cursor)
        # One level per tick: what follows raw_judgments waits until raw_judgments' blocking checks have passed
        # (they run in the same run as raw_judgments, which this tick requests).
        requested = {key.to_user_string(): after.get_requested_partitions(key) for key in defs.resolve_asset_graph().get_all_asset_keys()}
        assert {asset: partitions for asset, partitions in requested.items() if partitions} == {"raw_judgments": {"v1|model_a", "v1|model_b"}}
