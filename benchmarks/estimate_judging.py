"""The judging estimate at full scale: 481,109 records, by resampling a generated judge version.

    .venv/bin/python benchmarks/estimate_judging.py                  # 20,000 demo records resampled to 481,109
    .venv/bin/python benchmarks/estimate_judging.py --records 5000 --target 481109

Writes `--records` demo records (`tqc demo-data`, seed 0) under benchmarks/out/, reads v1's batch
outputs with the project's reader, draws `--target` records from them with replacement (seeded; each
copy gets its own record id, so every drawn record is asked once) and runs the same estimate `tqc
estimate` prints for a version `v3` judged from v1 with the default config: the real prompts, v1's
median output tokens, request files within the batch quotas, batch and on-demand prices.
"""

from __future__ import annotations

import argparse
import glob
from pathlib import Path

import polars as pl

from tqc_dagster.config import TqcConfig
from tqc_dagster.core.batch_outputs import read_records
from tqc_dagster.demo_data import write_demo_data
from tqc_dagster.estimate_judging import judging_partition

OUT = Path(__file__).resolve().parent.parent / "benchmarks" / "out"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--target", type=int, default=481_109)
    args = parser.parse_args()
    demo = OUT / f"judging-{args.records}"
    if not (demo / "demo_summary.json").exists():
        write_demo_data(demo, records=args.records, seed=0)
    files = sorted(glob.glob(str(demo / "raw/translation_eval_cot/c35-v2/*/*/*.jsonl.out")))
    records = read_records(files, [1, 2]).records
    drawn = records.filter(pl.col("parse_error").fill_null("") != "unreadable_line").unique("record_id", keep="first").sample(args.target, with_replacement=True, seed=0)
    drawn = drawn.with_columns(pl.concat_str(pl.col("record_id"), pl.lit("_"), pl.int_range(pl.len()).cast(pl.String)).alias("record_id"))
    config = TqcConfig.model_validate({
        "storage_root": str(OUT / "lake"),
        "judge_versions": {
            "v1": {"judge_model": "anthropic.claude-3-5-sonnet-20241022-v2:0", "input": files[0]},
            "v3": {"judge_model": "us.anthropic.claude-3-7-sonnet-20250219-v1:0", "judge_from": "v1",
                   "batch": {"role_arn": "arn:aws:iam::123456789012:role/tqc-batch-inference", "input_uri": "s3://bucket/in/", "output_uri": "s3://bucket/out/"}},
        },
        "models": {"model_a": {"translation_id": 1, "name": "amazon.nova-lite-v1:0"}, "model_b": {"translation_id": 2, "name": "anthropic.claude-3-5-sonnet-20241022-v2:0"}},
        "agreement": {"judges": ["v1", "v3"]},
    })
    row = judging_partition(drawn, config, "v3")
    print(f"{args.records:,} demo records of v1 resampled to {args.target:,}:")
    with pl.Config(tbl_cols=20, tbl_width_chars=250, tbl_hide_column_data_types=True, tbl_hide_dataframe_shape=True, thousands_separator=True, fmt_str_lengths=60):
        print(pl.DataFrame([row]))


if __name__ == "__main__":
    main()
