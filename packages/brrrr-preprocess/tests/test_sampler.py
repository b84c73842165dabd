"""Tests of brrrr.preprocess.neurovfm.sampler and brrrr.preprocess.neurovfm.collate."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from brrrr.preprocess.errors import CollateError, SamplerError
from brrrr.preprocess.neurovfm.collate import collate_tokens
from brrrr.preprocess.neurovfm.sampler import StudyAwareBatchSampler, plan_batches, shard_batches


class Studies:
    """A stand-in dataset: the study of each index and its token count."""

    def __init__(self, sizes: list[int], tokens: list[int] | None = None) -> None:
        # Interleave studies so that a study's images are not contiguous indices.
        self.study_ids: list[str] = []
        remaining = list(sizes)
        while any(remaining):
            for s, left in enumerate(remaining):
                if left:
                    self.study_ids.append(f"study{s}")
                    remaining[s] -= 1
        n = len(self.study_ids)
        self.token_counts = tokens if tokens is not None else [10 + (7 * i) % 23 for i in range(n)]

    def __len__(self) -> int:
        return len(self.study_ids)


study_sizes = st.lists(st.integers(1, 6), min_size=0, max_size=25)


@settings(max_examples=60, deadline=None)
@given(
    sizes=study_sizes,
    batch_size=st.integers(1, 8),
    replicas=st.integers(1, 4),
    seed=st.integers(0, 2**16),
    epoch=st.integers(0, 5),
    budget=st.one_of(st.none(), st.integers(1, 120)),
)
def test_properties_over_ranks(
    sizes: list[int], batch_size: int, replicas: int, seed: int, epoch: int, budget: int | None
) -> None:
    data = Studies(sizes)
    samplers = [
        StudyAwareBatchSampler(
            data, batch_size, seed=seed, num_replicas=replicas, rank=r, max_tokens=budget
        )
        for r in range(replicas)
    ]
    per_rank = []
    for sampler in samplers:
        sampler.set_epoch(epoch)
        per_rank.append(list(sampler))
    # Every rank has exactly the same number of batches, and len() is exact.
    assert len({len(b) for b in per_rank}) <= 1
    for sampler, batches in zip(samplers, per_rank, strict=True):
        assert len(sampler) == len(batches)
    all_batches = [batch for batches in per_rank for batch in batches]
    # Studies are never split: all of a study's images sit in every batch that has one.
    study_images = Counter(data.study_ids)
    for batch in all_batches:
        in_batch = Counter(data.study_ids[i] for i in batch)
        assert in_batch == {s: study_images[s] for s in in_batch}
    # The union over ranks covers every image.
    assert {i for batch in all_batches for i in batch} == set(range(len(data)))
    # Padding repeats at most R - 1 batches.
    assert (
        len(all_batches)
        - len(
            plan_batches(
                data.study_ids,
                batch_size,
                seed=seed,
                epoch=epoch,
                max_tokens=budget,
                token_counts=data.token_counts,
            )
        )
        < replicas
    )
    # Limits hold except for a batch that is a single oversized study.
    for batch in all_batches:
        if len({data.study_ids[i] for i in batch}) > 1:
            assert len(batch) <= batch_size
            if budget is not None:
                assert sum(data.token_counts[i] for i in batch) <= budget


@settings(max_examples=30, deadline=None)
@given(sizes=study_sizes, seed=st.integers(0, 1000), epoch=st.integers(0, 3))
def test_plan_is_deterministic_per_seed_and_epoch(sizes: list[int], seed: int, epoch: int) -> None:
    data = Studies(sizes)
    first = StudyAwareBatchSampler(data, 4, seed=seed, num_replicas=2, rank=1)
    second = StudyAwareBatchSampler(data, 4, seed=seed, num_replicas=2, rank=1)
    first.set_epoch(epoch)
    second.set_epoch(epoch)
    assert list(first) == list(second)
    assert list(first) == list(first)  # iterating twice gives the same epoch


def test_epochs_and_seeds_change_the_order() -> None:
    data = Studies([1] * 30)
    sampler = StudyAwareBatchSampler(data, 3, seed=0)
    epoch0 = list(sampler)
    sampler.set_epoch(1)
    assert list(sampler) != epoch0
    assert list(StudyAwareBatchSampler(data, 3, seed=1)) != epoch0
    in_order = StudyAwareBatchSampler(data, 3, shuffle="none", seed=0)
    assert [i for b in in_order for i in b] == list(range(30))


def test_padding_wraps_deterministically() -> None:
    batches = [[0], [1], [2]]
    assert shard_batches(batches, 2, 0) == [[0], [2]]
    assert shard_batches(batches, 2, 1) == [[1], [0]]
    assert shard_batches(batches, 4, 3) == [[0]]
    assert shard_batches([], 3, 2) == []


def test_oversized_study_is_its_own_batch() -> None:
    data = Studies([2, 7, 1], tokens=[5] * 10)
    batches = plan_batches(data.study_ids, 4, shuffle="none")
    assert sorted(len(b) for b in batches) == [1, 2, 7]
    by_tokens = plan_batches(
        data.study_ids, 100, shuffle="none", max_tokens=16, token_counts=data.token_counts
    )
    assert [len(b) for b in by_tokens] == [2, 7, 1]
    assert [len(b) for b in plan_batches(data.study_ids, 100, shuffle="none")] == [10]


def test_bad_arguments_are_refused() -> None:
    data = Studies([1, 2])
    with pytest.raises(SamplerError, match="batch_size"):
        StudyAwareBatchSampler(data, 0)
    with pytest.raises(SamplerError, match="rank"):
        StudyAwareBatchSampler(data, 2, num_replicas=2, rank=2)
    with pytest.raises(SamplerError, match="shuffle"):
        StudyAwareBatchSampler(data, 2, shuffle=True)  # type: ignore[arg-type]

    class NoTokens:
        study_ids = ("a", "b")

    with pytest.raises(SamplerError, match="token_counts"):
        StudyAwareBatchSampler(NoTokens(), 2, max_tokens=10)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_two_gloo_ranks_agree_and_all_reduce_every_batch(tmp_path: Path) -> None:
    worker = Path(__file__).with_name("ddp_sampler_worker.py")
    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, str(worker), str(r), "2", str(port), str(tmp_path / f"rank{r}.json")],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for r in range(2)
    ]
    outputs = []
    try:
        for proc in procs:
            outputs.append(proc.communicate(timeout=90)[0].decode(errors="replace"))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    assert [p.returncode for p in procs] == [0, 0], "\n".join(outputs)
    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert reports[0]["len"] == reports[1]["len"]
    for epoch in range(2):
        counts = [rep["epochs"][epoch]["n_batches"] for rep in reports]
        assert counts[0] == counts[1] == reports[0]["epochs"][epoch]["max_over_ranks"]
        covered = {i for rep in reports for b in rep["epochs"][epoch]["batches"] for i in b}
        assert covered == set(range(23))


def _sample(n: int, label: object = 1) -> dict[str, object]:
    return {
        "img": torch.rand(n, 8),
        "coords": torch.arange(3 * n, dtype=torch.int32).reshape(n, 3),
        "filtered": torch.zeros(n, dtype=torch.uint8),
        "size": torch.tensor([1, 1, n], dtype=torch.int32),
        "path": f"s/{n}",
        "study": "s",
        "label": label,
        "mode": "mri",
        "window": None,
    }


def test_collate_padded_and_packed_agree() -> None:
    batch = [_sample(3), _sample(1), _sample(4)]
    padded = collate_tokens(batch, pad_to_multiple=8)
    packed = collate_tokens(batch, layout="packed")
    assert padded["img"].shape == (3, 8, 8)
    assert padded["cu_seqlens"].tolist() == [0, 3, 4, 8] == packed["cu_seqlens"].tolist()
    assert padded["cu_seqlens"].dtype == torch.int32
    assert padded["max_seqlen"] == 4
    assert padded["padding_mask"].sum().item() == 3 * 8 - 8
    torch.testing.assert_close(padded["img"][~padded["padding_mask"]], packed["img"])
    torch.testing.assert_close(padded["coords"][~padded["padding_mask"]], packed["coords"])
    assert bool((padded["filtered"][padded["padding_mask"]] == 1).all())
    assert padded["label"].tolist() == [1, 1, 1]
    assert padded["path"] == ["s/3", "s/1", "s/4"]
    assert padded["size"].shape == (3, 3)


def test_collate_labels_and_errors() -> None:
    multi = collate_tokens([_sample(2, [0, 1]), _sample(2, [1, 1])])
    assert multi["label"].shape == (2, 2)
    assert collate_tokens([_sample(2, "a")])["label"] == ["a"]
    with pytest.raises(CollateError, match="empty"):
        collate_tokens([])
    with pytest.raises(CollateError, match="widths"):
        collate_tokens([_sample(2), {**_sample(2), "img": torch.rand(2, 4)}])
    with pytest.raises(CollateError, match="tokenize=True"):
        collate_tokens([{"img": torch.rand(2, 4)}])
