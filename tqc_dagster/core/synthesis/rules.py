"""The `rules` synthesis backend: offline, deterministic, and honest about what it made.

It takes a flawless judged translation (all 7 scores 5) of the group's product category and perturbs it
so that it shows exactly the group's criterion's problem at the group's severity, scores that criterion
inside the group's score bucket (the other six stay 5, so the criterion is the unique lowest), and writes
a thought that names the concrete defect and how bad it is. Every (criterion, score bucket) has its own
family of perturbations (perturbations.py): bucket 4 the mildest form, bucket 0 the worst, so no bucket
takes the texts another one needs, and one text serves one group only.

Texts are spread over the bases first (one variant of every base before a second variant of any), in
passes that ask for more variants per base only for the groups still short; the last pass tries every
variant of every base, so a group left short has truly run out, and the report says why, with numbers.
"""

from __future__ import annotations

import polars as pl

from tqc_dagster.core.hashing import stable_hash_expr, stable_id_expr
from tqc_dagster.core.judgments import SAMPLE_COLUMNS, Thresholds, with_derived_columns
from tqc_dagster.core.rubric import CRITERIA, JUDGED, MAX_SCORE, N_SCORES, SIMPLE_CRITERIA, SYNTHETIC
from tqc_dagster.core.synthesis import GROUP_KEYS, SynthesisOutput
from tqc_dagster.core.synthesis.perturbation_frame import prepare
from tqc_dagster.core.synthesis.perturbations import REQUIRES, family

NAME = "rules"
RULE_SET = "rules-v2"
# Texts made per sample a group needs, pass by pass: the first from as few bases as that takes (one variant
# each where there are enough bases), the second from every base that can show the group, deeper; the last
# (None) tries every variant of every base, so a group still short has truly run out.
PASSES = (2, 8, None)
BASE_COLUMNS = ["base_id", "judge_version", "model", "record_id", "product_category", "target_lang", "source", "translation"]


def _seeded(seed: int, *parts: pl.Expr) -> pl.Expr:
    return stable_hash_expr(pl.concat_str([pl.lit(str(seed)), *parts], separator="|"))


def _candidates(bases: pl.DataFrame, groups: pl.DataFrame, seed: int, spare: int | None, first: bool) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Perturbed texts for the groups (GROUP_KEYS + `needed`, `remaining`), and how many bases can show each group.

    Per group the bases that can show it are ordered by a seeded hash, and each gives its variants in order.
    The `first` pass makes about `spare` x remaining texts from as few bases as that takes, as many variants
    from each; a later one about `spare` x needed texts from every base, at least one variant deeper than
    the first pass went; without `spare`, every variant of every base."""
    made, usable = [], []
    for criterion, bucket in groups.select("criterion", "score_bucket").unique().sort("criterion", "score_bucket").iter_rows():
        perturb = family(criterion, bucket)
        wanted = groups.filter((pl.col("criterion") == criterion) & (pl.col("score_bucket") == bucket)).select("product_category", "needed", "remaining")
        frame = (
            bases.join(wanted, on="product_category")
            .with_columns(perturb.capacity.cast(pl.Int64).alias("_cap"))
            .filter(pl.col("_cap") > 0)
            .with_columns(_seeded(seed, pl.col("base_id"), pl.lit(f"{criterion}|{bucket}")).alias("_order"))
            .sort("product_category", "_order")
            .with_columns(pl.int_range(pl.len()).over("product_category").alias("_base_rank"), pl.len().over("product_category").cast(pl.Int64).alias("_usable"))
        )
        usable.append(frame.group_by("product_category").agg(pl.len().cast(pl.Int64).alias("usable")).with_columns(
            pl.lit(criterion, dtype=pl.Int64).alias("criterion"), pl.lit(bucket, dtype=pl.Int64).alias("score_bucket")))
        if frame.is_empty():  # no base can show it (and polars 1.44 mistypes some list expressions on empty frames)
            continue
        if spare is None:
            rounds = pl.col("_cap")
        elif first:
            wanted_texts = pl.col("remaining") * spare
            taken_bases = pl.min_horizontal(pl.col("_usable"), wanted_texts)
            frame = frame.filter(pl.col("_base_rank") < taken_bases)
            rounds = pl.min_horizontal(pl.col("_cap"), (wanted_texts + taken_bases - 1) // taken_bases)
        else:
            rounds = pl.min_horizontal(pl.col("_cap"), 1 + (pl.col("needed") * spare + pl.col("_usable") - 1) // pl.col("_usable"))
        frame = frame.with_columns(pl.int_ranges(0, rounds).alias("_v")).explode("_v", empty_as_null=False)
        # Rotated per base, so the first variants of different bases are different kinds of the same defect.
        variant = ((pl.col("_v") + (pl.col("_order") % pl.col("_cap").cast(pl.UInt64)).cast(pl.Int64)) % pl.col("_cap")).alias("variant")
        frame, text, defect = perturb.apply(frame.with_columns(variant), "variant")
        made.append(frame.select(
            *BASE_COLUMNS, pl.lit(criterion, dtype=pl.Int64).alias("criterion"), pl.lit(bucket, dtype=pl.Int64).alias("score_bucket"),
            "_v", "_base_rank", "variant", text.alias("corrupted"), defect.alias("defect"),
        ))
    schema_usable = {"product_category": pl.String, "usable": pl.Int64, "criterion": pl.Int64, "score_bucket": pl.Int64}
    return (pl.concat(made) if made else pl.DataFrame()), (pl.concat(usable) if usable else pl.DataFrame(schema=schema_usable))


def _choose(candidates: pl.DataFrame, groups: pl.DataFrame, excluded: pl.DataFrame) -> pl.DataFrame:
    """Up to `remaining` distinct texts per group, base by base; a text already used anywhere (`excluded`:
    source, corrupted) or judged for the same source is never used again, so one text serves one group.

    Where two groups pick the same text (two categories can hold the same title and translation), the first
    group keeps it and the other moves on to its next candidates, round by round until no text is contested."""
    order = ["criterion", "score_bucket", "product_category", "_v", "_base_rank"]
    if candidates.is_empty():
        return candidates
    candidates = (
        candidates.filter(pl.col("corrupted").is_not_null() & (pl.col("corrupted") != pl.col("translation")))
        .join(excluded, on=["source", "corrupted"], how="anti")
        .sort(order)
        .unique(subset=[*GROUP_KEYS, "source", "corrupted"], keep="first", maintain_order=True)
    )
    remaining, picked = groups.select(*GROUP_KEYS, "remaining"), []
    while not (candidates.is_empty() or remaining.is_empty()):
        wanted = (
            candidates.join(remaining, on=GROUP_KEYS)
            .sort(order)
            .filter(pl.int_range(pl.len()).over(GROUP_KEYS) < pl.col("remaining"))
            .drop("remaining")
        )
        won = wanted.unique(subset=["source", "corrupted"], keep="first", maintain_order=True)
        picked.append(won)
        candidates = candidates.join(won.select("source", "corrupted"), on=["source", "corrupted"], how="anti")
        got = won.group_by(GROUP_KEYS).agg(pl.len().cast(pl.Int64).alias("_got"))
        remaining = (
            remaining.join(got, on=GROUP_KEYS, how="left")
            .with_columns(pl.col("remaining") - pl.col("_got").fill_null(0))
            .filter(pl.col("remaining") > 0)
            .drop("_got")
        )
        if won.height == wanted.height:  # nothing contested: every group got what it could
            break
    return pl.concat(picked) if picked else candidates.clear()


def _scores(score: pl.Expr) -> pl.Expr:
    return pl.concat_list([pl.when(pl.col("criterion") == i).then(score).otherwise(pl.lit(MAX_SCORE)) for i in range(N_SCORES)])


def _thought() -> pl.Expr:
    criterion_name = pl.col("criterion").replace_strict(dict(enumerate(CRITERIA)), return_dtype=pl.String)
    return pl.concat_str(
        pl.lit("Criterion "), pl.col("criterion").cast(pl.String), pl.lit(" ("), criterion_name, pl.lit("): the translation "),
        pl.col("defect"), pl.lit(". No other criterion is affected."),
    )


class RulesBackend:
    """Perturbs flawless judged translations; see the module docstring."""

    name = NAME

    def __init__(self, thresholds: Thresholds):
        self.thresholds = thresholds

    def synthesize(self, judged: pl.DataFrame, wanted: pl.DataFrame, seed: int) -> SynthesisOutput:
        unknown = set(wanted.get_column("criterion").unique().to_list()) - set(SIMPLE_CRITERIA)
        if unknown:
            raise ValueError(f"the rules backend synthesizes criteria {SIMPLE_CRITERIA}, not {sorted(unknown)}")
        flawless = judged.filter((pl.col("origin") == JUDGED) & (pl.col("min_score") == MAX_SCORE))
        bases = prepare(flawless.select(pl.col("sample_id").alias("base_id"), *BASE_COLUMNS[1:]))
        excluded = judged.select("source", pl.col("translation").alias("corrupted")).unique()
        groups = wanted.select(*GROUP_KEYS, "needed", pl.col("needed").alias("remaining"))
        chosen, usable = [], None
        for number, spare in enumerate(PASSES):
            if groups.is_empty():
                break
            candidates, usable_now = _candidates(bases, groups, seed, spare, first=number == 0)
            usable = usable_now if usable is None else pl.concat([usable.join(usable_now, on=GROUP_KEYS, how="anti"), usable_now])
            picked = _choose(candidates, groups, excluded)
            if picked.is_empty():
                continue
            chosen.append(picked)
            excluded = pl.concat([excluded, picked.select("source", "corrupted")])
            got = picked.group_by(GROUP_KEYS).agg(pl.len().cast(pl.Int64).alias("got"))
            groups = (
                groups.join(got, on=GROUP_KEYS, how="left")
                .with_columns((pl.col("remaining") - pl.col("got").fill_null(0)).alias("remaining"))
                .filter(pl.col("remaining") > 0)
                .drop("got")
            )
        synthetic = self._rows(pl.concat(chosen) if chosen else None, seed)
        return SynthesisOutput(synthetic, _report(wanted, synthetic, flawless, usable))

    def _rows(self, made: pl.DataFrame | None, seed: int) -> pl.DataFrame:
        if made is None:
            return with_derived_columns(pl.DataFrame(schema=_EMPTY_SCHEMA), self.thresholds).select(SAMPLE_COLUMNS)
        return with_derived_columns(
            made.with_columns(
                # a function of the text alone: the same title and text made in another partition get the same score
                (pl.col("score_bucket") + 0.5 * (_seeded(seed, pl.col("source"), pl.col("corrupted")) % 2)).alias("_score"),
            ).with_columns(
                _scores(pl.col("_score")).alias("scores"),
                _thought().alias("thought"),
                pl.col("corrupted").alias("translation"),
                pl.concat_str(
                    "record_id", pl.lit("#synthetic-c"), pl.col("criterion").cast(pl.String),
                    pl.lit("b"), pl.col("score_bucket").cast(pl.String), pl.lit("v"), pl.col("variant").cast(pl.String),
                ).alias("record_id"),
            ),
            self.thresholds,
        ).with_columns(
            stable_id_expr(pl.concat_str("judge_version", "model", "record_id", "translation", separator="|")).alias("sample_id"),
            pl.lit(SYNTHETIC).alias("origin"),
            pl.lit(NAME).alias("synthetic_backend"),
            pl.lit(RULE_SET).alias("synthetic_model"),
        ).select(SAMPLE_COLUMNS).sort("sample_id")


_EMPTY_SCHEMA = {
    "sample_id": pl.String, "judge_version": pl.String, "model": pl.String, "record_id": pl.String, "product_category": pl.String,
    "target_lang": pl.String, "source": pl.String, "translation": pl.String, "thought": pl.String, "scores": pl.List(pl.Float64),
    "origin": pl.String, "synthetic_backend": pl.String, "synthetic_model": pl.String,
}


def _report(wanted: pl.DataFrame, synthetic: pl.DataFrame, flawless: pl.DataFrame, usable: pl.DataFrame | None) -> pl.DataFrame:
    made = synthetic.group_by(GROUP_KEYS).agg(pl.len().cast(pl.Int64).alias("made"))
    bases = flawless.group_by("product_category").agg(pl.len().cast(pl.Int64).alias("_bases"))
    requires = pl.DataFrame(
        [{"criterion": c, "score_bucket": b, "_requires": text} for (c, b), text in REQUIRES.items()],
        schema={"criterion": pl.Int64, "score_bucket": pl.Int64, "_requires": pl.String},
    )
    usable = usable if usable is not None else pl.DataFrame(schema={"product_category": pl.String, "usable": pl.Int64, "criterion": pl.Int64, "score_bucket": pl.Int64})
    count = pl.col("_bases").cast(pl.String)
    needs = pl.concat_str(pl.lit(" (it needs "), pl.col("_requires"), pl.lit(")"))
    why = (
        pl.when(pl.col("unfilled") <= 0)
        .then(pl.lit(None, dtype=pl.String))
        .when(pl.col("_bases") == 0)
        .then(pl.lit("no flawless judged translation in this category to perturb"))
        .when(pl.col("usable") == 0)
        .then(pl.concat_str(pl.lit("none of the category's "), count, pl.lit(" flawless judged translations can show this criterion at this severity"), needs))
        .otherwise(pl.concat_str(
            pl.col("usable").cast(pl.String), pl.lit(" of the category's "), count,
            pl.lit(" flawless judged translations can show this criterion at this severity"), needs,
            pl.lit(", and every variant of them gives only "), pl.col("made").cast(pl.String), pl.lit(" distinct texts"),
        ))
    )
    return (
        wanted.join(made, on=GROUP_KEYS, how="left")
        .join(bases, on="product_category", how="left")
        .join(usable, on=GROUP_KEYS, how="left")
        .join(requires, on=["criterion", "score_bucket"], how="left")
        .with_columns(pl.col("made").fill_null(0), pl.col("_bases").fill_null(0), pl.col("usable").fill_null(0))
        .with_columns((pl.col("needed") - pl.col("made")).alias("unfilled"))
        .with_columns(why.alias("why"))
        .select(GROUP_KEYS + ["samples", "needed", "made", "unfilled", "why"])
        .sort(GROUP_KEYS)
    )
