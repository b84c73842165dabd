"""Study-level splits: no study in two splits, deterministic by seed, every row once."""

from __future__ import annotations

import numpy as np
import pytest

from brrrr.models.errors import ModelConfigError
from brrrr.models.training.splits import study_split


def _groups(n_studies: int = 40, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 5, n_studies)  # 1-4 analyses per study, like a coordinate database
    return np.array([f"study{s:03d}" for s, n in enumerate(sizes) for _ in range(n)], dtype=object)


def test_no_study_is_in_two_splits_and_rows_are_covered_once() -> None:
    groups = _groups()
    split = study_split(groups, val_fraction=0.2, test_fraction=0.1, seed=3)
    studies = {name: set(groups[rows]) for name, rows in split.items()}
    assert not studies["train"] & studies["val"]
    assert not studies["train"] & studies["test"]
    assert not studies["val"] & studies["test"]
    rows = np.concatenate(list(split.values()))
    assert sorted(rows.tolist()) == list(range(len(groups)))
    assert len(studies["val"]) == 8
    assert len(studies["test"]) == 4


def test_deterministic_by_seed_and_independent_of_row_order() -> None:
    groups = _groups()
    a = study_split(groups, seed=1)
    b = study_split(groups, seed=1)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    c = study_split(groups, seed=2)
    assert not np.array_equal(a["val"], c["val"])
    shuffled = groups[::-1]
    d = study_split(shuffled, seed=1)
    assert set(shuffled[d["val"]]) == set(groups[a["val"]])


def test_adding_studies_moves_few_existing_ones() -> None:
    groups = _groups(40)
    more = np.concatenate([groups, [f"new{i}" for i in range(4)]])
    before = set(groups[study_split(groups, val_fraction=0.25, test_fraction=0, seed=0)["train"]])
    after = set(more[study_split(more, val_fraction=0.25, test_fraction=0, seed=0)["train"]])
    assert len(before - after) <= 2


def test_too_few_studies_is_an_error() -> None:
    with pytest.raises(ModelConfigError, match="cannot be split"):
        study_split(["a", "a", "b"], val_fraction=0.3, test_fraction=0.3)
    with pytest.raises(ModelConfigError, match="sum to less than 1"):
        study_split(["a", "b"], val_fraction=0.6, test_fraction=0.6)
