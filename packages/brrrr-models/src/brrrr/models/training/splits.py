"""Study-level train/validation/test splits that never put one study in two splits.

A coordinate database lists *analyses* (contrasts), several per study; the analyses of a study
share participants and often peaks, so a split by analysis leaks. :func:`study_split` assigns
whole studies (``groups``) to splits.

Rule (deterministic, no global random state): every study gets the key
``SHA-256(f"{seed}:{study}")``; studies are ranked by key; the first
``round(n_studies * val_fraction)`` go to validation, the next ``round(n_studies *
test_fraction)`` to test, the rest to training (each non-zero fraction gets at least one study).
A study's rank does not depend on which other studies are present, so adding studies to a
database moves few old ones between splits.

Example:
    >>> split = study_split(["a", "a", "b", "c", "d"], val_fraction=0.25, test_fraction=0.25)
    >>> sorted(len(v) for v in split.values())
    [1, 1, 3]
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from brrrr.models.errors import ModelConfigError

__all__ = ["SplitConfig", "study_split"]


@dataclass(frozen=True)
class SplitConfig:
    """Fractions of *studies* (not analyses) held out, and the seed of the assignment.

    Attributes:
        val_fraction: Share of studies for validation.
        test_fraction: Share of studies for the test split.
        seed: Seed mixed into each study's key.
    """

    val_fraction: float = 0.1
    test_fraction: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        if min(self.val_fraction, self.test_fraction) < 0 or (
            self.val_fraction + self.test_fraction >= 1
        ):
            raise ModelConfigError(
                "val_fraction and test_fraction must be >= 0 and sum to less than 1, got "
                f"{self.val_fraction} and {self.test_fraction}"
            )


def _key(seed: int, study: str) -> bytes:
    return hashlib.sha256(f"{seed}:{study}".encode()).digest()


def _count(n: int, fraction: float) -> int:
    return 0 if fraction == 0 else max(1, round(n * fraction))


def study_split(
    groups: Sequence[str] | np.ndarray,
    *,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Split rows into train/val/test so that every study lies in exactly one split.

    Args:
        groups: ``(R,)`` the study of each row (analysis).
        val_fraction: Share of studies for validation.
        test_fraction: Share of studies for testing.
        seed: Seed of the assignment.

    Returns:
        ``{"train", "val", "test"}``: ascending ``int64`` row indices; together every row once.

    Raises:
        ModelConfigError: Bad fractions, or too few studies to give every non-empty split one
            and still train on one.
    """
    SplitConfig(val_fraction, test_fraction, seed)  # validates the fractions
    labels = np.asarray([str(g) for g in groups], dtype=object)
    studies = sorted(set(labels.tolist()))
    n_val = _count(len(studies), val_fraction)
    n_test = _count(len(studies), test_fraction)
    if n_val + n_test >= len(studies):
        raise ModelConfigError(
            f"{len(studies)} studies cannot be split into {n_val} validation, {n_test} test and "
            "at least one training study; lower the fractions or add studies"
        )
    ranked = sorted(studies, key=lambda s: _key(seed, s))
    split_of = {s: "val" for s in ranked[:n_val]}
    split_of.update({s: "test" for s in ranked[n_val : n_val + n_test]})
    names = np.array([split_of.get(s, "train") for s in labels.tolist()], dtype=object)
    return {
        name: np.flatnonzero(names == name).astype(np.int64) for name in ("train", "val", "test")
    }
