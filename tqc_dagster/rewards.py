"""The reference reward for RL on the grpo/ and verl/ exports: how close a completion's ratings are to the judge's.

reward = 1 - mean(|predicted - reference|) / 5, in [0, 1], over the target model's criteria (6 for simple, 1 for
complex); 0 when the completion has no rating list of the reference's length with every rating in [0, 5]. The
ratings are the last `[...]` list of numbers in the completion (the assistant turn ends with
"my ratings is [5.0, 4.5, ...]"; a `<think>` part before it may hold other lists).

`ratings_reward` is a TRL GRPOTrainer reward function (it receives the dataset's `ratings` column);
`compute_score` is a verl custom reward function (`custom_reward_function.path` = this file,
`name` = compute_score; it receives `reward_model.ground_truth`).
"""

from __future__ import annotations

import re

MAX_RATING = 5.0
_NUMBER = r"-?\d+(?:\.\d+)?"
_RATING_LIST = re.compile(rf"\[\s*{_NUMBER}(?:\s*,\s*{_NUMBER})*\s*\]")


def parse_ratings(text: str) -> list[float] | None:
    """The last bracketed list of numbers in `text` as floats (`"... is [5.0, 4]"` -> [5.0, 4.0]); None when there is none."""
    found = _RATING_LIST.findall(text or "")
    return [float(value) for value in re.findall(_NUMBER, found[-1])] if found else None


def rating_reward(completion: str, reference: list[float]) -> float:
    """1 - mean absolute error / 5 of the completion's ratings against `reference` (floats in [0, 5]); 0 when the
    ratings cannot be parsed, have another length than the reference, or fall outside [0, 5]."""
    predicted = parse_ratings(completion)
    if not reference or predicted is None or len(predicted) != len(reference) or not all(0 <= p <= MAX_RATING for p in predicted):
        return 0.0
    error = sum(abs(p - r) for p, r in zip(predicted, reference)) / len(reference)
    return 1.0 - error / MAX_RATING


def _text(completion) -> str:
    """A TRL completion as text: a string, or (conversational) the content of the last message."""
    return completion if isinstance(completion, str) else completion[-1]["content"]


def ratings_reward(completions: list, ratings: list[list[float]], **_) -> list[float]:
    """TRL GRPOTrainer reward function: one rating_reward per completion, against the row's `ratings` column."""
    return [rating_reward(_text(completion), reference) for completion, reference in zip(completions, ratings)]


def compute_score(data_source: str, solution_str: str, ground_truth: str, extra_info: dict | None = None) -> float:
    """verl custom reward function: rating_reward of the solution against the ground truth ratings text ("[5.0, 4.5]")."""
    return rating_reward(solution_str, parse_ratings(ground_truth) or [])
