"""Start a cache build and kill this process (SIGKILL) part-way, for the resume test.

Run by ``test_cache.py::test_killed_build_resumes_with_only_the_missing_entries``:
``python cache_kill_worker.py ROOT N``. Builds in-process; the first ``N - 1`` entries
complete, then on the ``N``-th the process leaves a half-written entry (an
``image.npy`` but no ``entry.json``) and kills itself, as an OOM kill or a node
failure would: no ``finally`` block, no manifest.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

from brrrr.preprocess.neurovfm import cache


def main() -> None:
    root, die_at = sys.argv[1], int(sys.argv[2])
    real = cache.build_entry
    calls = 0

    def dying(*args: Any, **kwargs: Any) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        if calls == die_at:
            folder = Path(args[4])
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "image.npy").write_bytes(b"half-written")
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*args, **kwargs)

    cache.build_entry = dying
    cache.CacheManager(root).build(num_workers=0, progress="none")


if __name__ == "__main__":
    main()
