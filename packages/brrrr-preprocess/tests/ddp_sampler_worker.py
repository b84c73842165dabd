"""One rank of the two-process ``torch.distributed`` test of StudyAwareBatchSampler.

Run by ``test_sampler.py::test_two_gloo_ranks_agree_and_all_reduce_every_batch``:
``python ddp_sampler_worker.py RANK WORLD PORT OUT_JSON``. Each rank builds the
sampler from ``torch.distributed`` (no explicit rank), iterates one epoch and
runs an ``all_reduce`` per batch; a rank with fewer batches would leave the other
blocked in its collective until the process-group timeout.
"""

from __future__ import annotations

import json
import sys
from datetime import timedelta

import torch
import torch.distributed as dist

from brrrr.preprocess.neurovfm.sampler import StudyAwareBatchSampler


class UnevenStudies:
    """23 images in 9 studies of 1–5 images, with uneven token counts."""

    def __init__(self) -> None:
        sizes = [5, 1, 3, 1, 4, 2, 1, 5, 1]
        self.study_ids = [f"s{i}" for i, n in enumerate(sizes) for _ in range(n)]
        self.token_counts = [64 + 37 * (i % 5) for i in range(len(self.study_ids))]


def main() -> None:
    rank, world, port, out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=world,
        timeout=timedelta(seconds=30),
    )
    sampler = StudyAwareBatchSampler(UnevenStudies(), 4, shuffle="studies", seed=3, max_tokens=400)
    report: dict[str, object] = {"rank": rank, "len": len(sampler), "epochs": []}
    for epoch in range(2):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        for batch in batches:
            value = torch.tensor([float(len(batch))])
            dist.all_reduce(value)  # blocks (then times out) if the other rank has stopped
        count = torch.tensor([len(batches)])
        dist.all_reduce(count, op=dist.ReduceOp.MAX)
        report["epochs"].append(  # type: ignore[attr-defined]
            {"n_batches": len(batches), "max_over_ranks": int(count), "batches": batches}
        )
    dist.barrier()
    dist.destroy_process_group()
    with open(out, "w") as handle:
        json.dump(report, handle)


if __name__ == "__main__":
    main()
