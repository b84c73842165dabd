"""A study-aware batch sampler with equal batch counts on every rank.

:class:`StudyAwareBatchSampler` puts every image of a study in the same batch (so a
study-level head sees the whole study on one device) and gives every rank of a
distributed job exactly the same number of batches, so collective operations
never wait for a rank that has run out (NeuroVFM's sampler estimates its length
from the mean study size; ranks disagree and DDP hangs).

How an epoch is planned (a pure function of the dataset's studies, ``seed`` and
the epoch, so every rank computes the same plan without communicating):

1. Images are grouped by study, studies in order of first appearance.
2. With ``shuffle="studies"`` the studies are permuted by
   ``numpy.random.default_rng([seed, epoch])``.
3. Studies are packed greedily, in that order, into batches of at most
   ``batch_size`` images and at most ``max_tokens`` tokens. A study that alone
   exceeds a limit becomes a batch of its own (studies are never split).
4. The list of ``n`` batches is padded to a multiple of ``num_replicas`` by
   repeating batches from its start (batch ``i`` for ``i ≥ n`` is batch
   ``i mod n``), and rank ``r`` takes batches ``r, r + R, r + 2R, …``. At most
   ``R − 1`` batches are repeated per epoch; no image is dropped.

``len(sampler)`` is the exact number of batches of the current epoch on this
rank. With ``shuffle="studies"`` and studies of unequal size, the greedy packing
can need a different number of batches in different epochs: call
:meth:`~StudyAwareBatchSampler.set_epoch` before ``len()``, as with
``torch.utils.data.DistributedSampler``. All ranks always agree.

Example:
    >>> class Studies:
    ...     study_ids = ["a", "a", "b", "c", "c", "c"]
    >>> sampler = StudyAwareBatchSampler(Studies(), 3, shuffle="none", seed=0)
    >>> list(sampler)
    [[0, 1, 2], [3, 4, 5]]
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Literal, Protocol

import numpy as np

from brrrr.preprocess.errors import SamplerError

__all__ = [
    "Shuffle",
    "StudyAwareBatchSampler",
    "StudyIndexed",
    "plan_batches",
    "shard_batches",
]

Shuffle = Literal["studies", "none"]


class StudyIndexed(Protocol):
    """What the sampler needs from a dataset.

    Attributes:
        study_ids: The study of each image index, ``len(dataset)`` strings.
    """

    @property
    def study_ids(self) -> Sequence[str]: ...


def _group_by_study(study_ids: Sequence[str]) -> list[list[int]]:
    groups: dict[str, list[int]] = {}
    for index, study in enumerate(study_ids):
        groups.setdefault(study, []).append(index)
    return list(groups.values())


def plan_batches(
    study_ids: Sequence[str],
    batch_size: int,
    *,
    shuffle: Shuffle = "studies",
    seed: int = 0,
    epoch: int = 0,
    max_tokens: int | None = None,
    token_counts: Sequence[int] | None = None,
) -> list[list[int]]:
    """The batches of one epoch over all ranks, before sharding (steps 1–3 above).

    Args:
        study_ids: The study of each image index, ``(n_images,)``.
        batch_size: Most images in a batch (a larger study is a batch of its own).
        shuffle: ``"studies"`` permutes studies per ``(seed, epoch)``; ``"none"`` keeps
            the order of first appearance.
        seed: Seed shared by all ranks.
        epoch: Epoch number, mixed into the permutation.
        max_tokens: Most tokens in a batch, or ``None`` for no token budget.
        token_counts: Tokens of each image, ``(n_images,)``; required with ``max_tokens``.

    Returns:
        Lists of image indices; each study's indices are all in one list.

    Raises:
        SamplerError: A limit is not positive, or ``token_counts`` is missing or
            has the wrong length.
    """
    if batch_size < 1:
        raise SamplerError(f"batch_size must be at least 1, got {batch_size}")
    if max_tokens is not None:
        if max_tokens < 1:
            raise SamplerError(f"max_tokens must be at least 1, got {max_tokens}")
        if token_counts is None or len(token_counts) != len(study_ids):
            raise SamplerError(
                "max_tokens needs the token count of every image: the dataset must expose "
                f"token_counts with {len(study_ids)} entries"
            )
    studies = _group_by_study(study_ids)
    order = np.arange(len(studies))
    if shuffle == "studies":
        order = np.random.default_rng([seed, epoch]).permutation(len(studies))
    elif shuffle != "none":
        raise SamplerError(f"shuffle must be 'studies' or 'none', got {shuffle!r}")

    batches: list[list[int]] = []
    batch: list[int] = []
    tokens = 0
    for s in order:
        indices = studies[int(s)]
        study_tokens = 0 if token_counts is None else sum(int(token_counts[i]) for i in indices)
        over_images = len(batch) + len(indices) > batch_size
        over_tokens = max_tokens is not None and tokens + study_tokens > max_tokens
        if batch and (over_images or over_tokens):
            batches.append(batch)
            batch, tokens = [], 0
        batch = batch + indices
        tokens += study_tokens
    if batch:
        batches.append(batch)
    return batches


def shard_batches(batches: Sequence[list[int]], num_replicas: int, rank: int) -> list[list[int]]:
    """This rank's share of an epoch's batches (step 4 above).

    Args:
        batches: All batches of the epoch, as from :func:`plan_batches`.
        num_replicas: Number of ranks ``R``.
        rank: This rank, in ``[0, R)``.

    Returns:
        ``ceil(len(batches) / R)`` batches (0 when there are none), the same count
        on every rank.
    """
    n = len(batches)
    if n == 0:
        return []
    total = math.ceil(n / num_replicas) * num_replicas
    return [list(batches[i % n]) for i in range(rank, total, num_replicas)]


def _distributed_default(kind: Literal["world", "rank"]) -> int:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size() if kind == "world" else dist.get_rank()
    return 1 if kind == "world" else 0


class StudyAwareBatchSampler:
    """Batches that keep studies whole, with the same count on every rank.

    Pass it to a ``DataLoader`` as ``batch_sampler``. See the module docstring for
    the exact plan and the padding rule.

    Args:
        dataset: Exposes ``study_ids`` (the study of each index) and, when
            ``max_tokens`` is set, ``token_counts`` (tokens of each index), as
            :class:`~brrrr.preprocess.neurovfm.datasets.ImageDataset` does.
        batch_size: Most images in a batch.
        shuffle: ``"studies"`` (new study order every epoch) or ``"none"``.
        seed: Seed, identical on every rank.
        num_replicas: Number of ranks; the ``torch.distributed`` world size when
            initialised, else 1.
        rank: This rank; from ``torch.distributed`` when initialised, else 0.
        max_tokens: Optional token budget per batch.

    Raises:
        SamplerError: Inconsistent arguments (see :func:`plan_batches`), or a rank
            outside ``[0, num_replicas)``.
    """

    def __init__(
        self,
        dataset: StudyIndexed,
        batch_size: int,
        *,
        shuffle: Shuffle = "studies",
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
        max_tokens: int | None = None,
    ) -> None:
        self.num_replicas = _distributed_default("world") if num_replicas is None else num_replicas
        self.rank = _distributed_default("rank") if rank is None else rank
        if self.num_replicas < 1 or not 0 <= self.rank < self.num_replicas:
            raise SamplerError(
                f"rank must be in [0, num_replicas): got rank={self.rank}, "
                f"num_replicas={self.num_replicas}"
            )
        self.study_ids: list[str] = [str(s) for s in dataset.study_ids]
        self.token_counts: list[int] | None = None
        if max_tokens is not None:
            counts = getattr(dataset, "token_counts", None)
            self.token_counts = None if counts is None else [int(c) for c in counts]
        self.batch_size = batch_size
        self.shuffle: Shuffle = shuffle
        self.seed = seed
        self.max_tokens = max_tokens
        self.epoch = 0
        self._cache: tuple[int, list[list[int]]] | None = None
        self._batches()  # validate the arguments now rather than at the first epoch

    def set_epoch(self, epoch: int) -> None:
        """Use the study order of ``epoch`` (call on every rank before iterating)."""
        self.epoch = epoch

    def _batches(self) -> list[list[int]]:
        if self._cache is None or self._cache[0] != self.epoch:
            plan = plan_batches(
                self.study_ids,
                self.batch_size,
                shuffle=self.shuffle,
                seed=self.seed,
                epoch=self.epoch,
                max_tokens=self.max_tokens,
                token_counts=self.token_counts,
            )
            self._cache = (self.epoch, shard_batches(plan, self.num_replicas, self.rank))
        return self._cache[1]

    def __iter__(self) -> Iterator[list[int]]:
        return iter([list(batch) for batch in self._batches()])

    def __len__(self) -> int:
        return len(self._batches())

    def __repr__(self) -> str:
        return (
            f"StudyAwareBatchSampler(images={len(self.study_ids)}, batch_size={self.batch_size}, "
            f"max_tokens={self.max_tokens}, shuffle={self.shuffle!r}, seed={self.seed}, "
            f"epoch={self.epoch}, rank={self.rank}/{self.num_replicas}, batches={len(self)})"
        )
