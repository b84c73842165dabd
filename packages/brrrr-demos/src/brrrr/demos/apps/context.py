"""What every tab of the demo app is handed: where the built-in sample lives, limits.

Each tab lives in its own module of :mod:`brrrr.demos.apps` and exposes two functions:

* ``prepare(sample_dir: Path) -> None`` writes what the tab needs under ``sample_dir / <tab>``
  (idempotent: a complete earlier run is reused, a partial one is rebuilt), offline, from data
  the code generates or a dependency ships;
* ``build_<tab>_tab(context: DemoContext) -> None`` adds the tab's components and events to the
  ``gr.Blocks`` being built (the caller opens ``with gr.Tab(...)``). Events that compute pass
  ``concurrency_limit=context.concurrency_limit`` and a stable ``api_name`` so ``gradio_client``
  can call them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["DemoContext"]


@dataclass(frozen=True)
class DemoContext:
    """Settings shared by the tabs of one running demo.

    Attributes:
        sample_dir: Root of the built-in sample (each tab's ``prepare`` wrote its part here).
        work_dir: Scratch folder for files the app hands out (masks, generated maps).
        max_upload_mb: Largest upload accepted, in MB.
        concurrency_limit: Jobs of one event that run at once; the rest wait in the queue.
    """

    sample_dir: Path
    work_dir: Path
    max_upload_mb: float = 256.0
    concurrency_limit: int = 2
