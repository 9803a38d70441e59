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
        chain = ["raw_judgments", "processed_samples", "quarantined_judgments", "synthetic_samples", "trainset", "testset", "balanced_trainset"]
        for asset in chain:  # requested together: each follows an input that will be updated in the same run
            assert after.get_requested_partitions(dg.AssetKey(asset)) == {"v1|model_a", "v1|model_b"}, asset
        assert after.total_requested == 2 * len(chain)  # nothing of v2, whose input did not change
