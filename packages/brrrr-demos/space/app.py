"""Hugging Face Space entry point: the three brrrr demos on the built-in sample.

A Space runs ``python app.py`` with the packages of ``requirements.txt`` installed. The sample
(a BIDS tree and its Parquet shards, synthetic stroke cases, the shipped atlas models) is
written on the first start into ``$BRRRR_DEMO_DIR`` (default here: ``./brrrr-demo``, which
persists on a Space with persistent storage) and reused afterwards. Nothing is downloaded.
"""

from __future__ import annotations

import os
from pathlib import Path

from brrrr.demos.apps.app import build_demo, launch


def main() -> None:
    """Build the app and serve it on the Space's port."""
    sample_dir = Path(os.environ.get("BRRRR_DEMO_DIR", Path(__file__).parent / "brrrr-demo"))
    demo = build_demo(
        sample_dir,
        concurrency_limit=int(os.environ.get("BRRRR_DEMO_CONCURRENCY", "2")),
        max_upload_mb=float(os.environ.get("BRRRR_DEMO_MAX_UPLOAD_MB", "256")),
    )
    launch(demo, host="0.0.0.0", port=int(os.environ.get("PORT", "7860")), block=True)


if __name__ == "__main__":
    main()
