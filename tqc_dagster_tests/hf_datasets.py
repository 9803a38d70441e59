"""Hugging Face `datasets`, offline, in a process of its own, as a consumer of the exports runs it.

    hf = OfflineDatasets(home)                  # one spawned worker process, HF_HOME=home, offline
    hf.load_dataset("json", data_files=path, split="train")   # -> Loaded
    hf.load_dataset(str(folder), "sft")                       # -> {split: Loaded}

`datasets.load_dataset` runs in the worker (a ProcessPoolExecutor of one spawned process), and its result
comes back as plain rows. Why not in the pytest process: twice a `datasets` load died of a segmentation
fault there, inside pyarrow (ParquetFile in `load_dataset`, in a one-process run after ~880 tests; and in
an xdist worker), taking the whole session down. In a process of its own such a crash fails the test that
loaded (BrokenProcessPool, with the worker's exit), and the next load starts a new worker.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path


def _offline(home: str) -> None:
    os.environ.update({"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "HF_HOME": home})
    import datasets

    datasets.disable_progress_bars()


def _load(*args, **kwargs):
    """In the worker: load_dataset's result as (column names, rows), per split for a DatasetDict."""
    import datasets

    loaded = datasets.load_dataset(*args, **kwargs)
    if isinstance(loaded, datasets.DatasetDict):
        return {split: (part.column_names, part.to_list()) for split, part in loaded.items()}
    return loaded.column_names, loaded.to_list()


@dataclass(frozen=True)
class Loaded:
    """One loaded split as plain rows, read like a datasets.Dataset: num_rows, column_names, rows, columns."""

    column_names: list[str]
    rows: list[dict]

    @property
    def num_rows(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[dict]:
        return iter(self.rows)

    def __getitem__(self, column: str) -> list:
        return [row[column] for row in self.rows]

    def select(self, indices: Iterable[int]) -> list[dict]:
        return [self.rows[i] for i in indices]


class OfflineDatasets:
    """`datasets.load_dataset` in a spawned worker process, offline, its caches under `home`."""

    def __init__(self, home: Path):
        self.home = str(home)
        self.pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=_offline, initargs=(self.home,))

    def load_dataset(self, *args, **kwargs) -> Loaded | dict[str, Loaded]:
        try:
            loaded = self.pool.submit(_load, *args, cache_dir=str(Path(self.home) / "cache"), **kwargs).result()
        except BrokenProcessPool:
            self.pool = self._new_pool()  # for the next load; this one fails
            raise
        if isinstance(loaded, dict):
            return {split: Loaded(*part) for split, part in loaded.items()}
        return Loaded(*loaded)

    def close(self) -> None:
        self.pool.shutdown(wait=True)
