"""The demo app: the three tabs in one ``gr.Blocks``, on the built-in sample, queued.

* :func:`prepare_sample` writes what every tab needs under one folder (offline; reused when
  complete): the explorer's BIDS tree and its ``to_hf`` shards, the stroke cases with ground
  truth, the atlas models.
* :func:`build_demo` builds the app: **Dataset explorer**, **Stroke segmentation**, **Atlas
  explorer**, each from its module's ``build_<tab>_tab``, with a queue whose jobs run at most
  ``concurrency_limit`` at a time per event (the rest wait; the queue holds ``max_queue``).
* :func:`launch` serves it; ``brrrr demo`` (:mod:`brrrr.demos.cli`) and a Hugging Face Space's
  ``app.py`` call it.

Example:
    >>> from brrrr.demos.apps.app import build_demo, prepare_sample
    >>> sample = prepare_sample("demo-sample")  # doctest: +SKIP
    >>> build_demo(sample).launch()  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from brrrr.core.errors import BrrrrError, MissingDependencyError
from brrrr.demos.apps.context import DemoContext
from brrrr.demos.errors import DemoSetupError

if TYPE_CHECKING:
    import gradio as gr

__all__ = ["SAMPLE_DIR_ENV", "TABS", "build_demo", "default_sample_dir", "launch", "prepare_sample"]

TABS: dict[str, tuple[str, str]] = {
    "explorer": ("Dataset explorer", "build_explorer_tab"),
    "stroke": ("Stroke segmentation", "build_stroke_tab"),
    "atlas": ("Atlas explorer", "build_atlas_tab"),
}
"""Tab key → (title, builder function of ``brrrr.demos.apps.<key>``), in display order."""
SAMPLE_DIR_ENV = "BRRRR_DEMO_DIR"
"""Environment variable: where the demo writes its sample (default: the user cache folder)."""


def default_sample_dir() -> Path:
    """``$BRRRR_DEMO_DIR``, else ``$XDG_CACHE_HOME/brrrr/demo`` (``~/.cache/brrrr/demo``)."""
    chosen = os.environ.get(SAMPLE_DIR_ENV)
    if chosen:
        return Path(chosen)
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "brrrr" / "demo"


def _module(key: str) -> object:
    if key not in TABS:
        raise DemoSetupError(f"no demo tab {key!r}; the tabs are {', '.join(TABS)}")
    try:
        return importlib.import_module(f"brrrr.demos.apps.{key}")
    except ImportError as exc:
        raise MissingDependencyError(
            f'the {TABS[key][0]} tab needs the apps extra ({exc}): pip install "brrrr-demos[apps]"'
        ) from None


def _keys(tabs: Sequence[str] | None) -> list[str]:
    keys = list(TABS) if tabs is None else [str(t) for t in tabs]
    for key in keys:
        _module(key)
    if not keys:
        raise DemoSetupError("no tabs to show")
    return keys


def prepare_sample(
    sample_dir: str | os.PathLike[str] | None = None, *, tabs: Sequence[str] | None = None
) -> Path:
    """Write (or reuse) the sample every tab reads, and return its folder.

    Args:
        sample_dir: The folder (default: :func:`default_sample_dir`).
        tabs: Only these tabs (keys of :data:`TABS`); default all.

    Raises:
        DemoSetupError: The folder cannot be written, or a tab's sample fails (the message
            says which tab and why).
        MissingDependencyError: The apps extra is not installed.
    """
    root = Path(sample_dir) if sample_dir is not None else default_sample_dir()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DemoSetupError(
            f"cannot create the sample folder ({exc.strerror})", path=root
        ) from None
    for key in _keys(tabs):
        module = _module(key)
        try:
            module.prepare(root)  # type: ignore[attr-defined]
        except BrrrrError:
            raise
        except OSError as exc:
            raise DemoSetupError(
                f"the {TABS[key][0]} sample could not be written ({exc})", path=root
            ) from None
    return root


def build_demo(
    sample_dir: str | os.PathLike[str] | None = None,
    *,
    work_dir: str | os.PathLike[str] | None = None,
    tabs: Sequence[str] | None = None,
    max_upload_mb: float = 256.0,
    concurrency_limit: int = 2,
    max_queue: int = 64,
    selected: str | None = None,
) -> gr.Blocks:
    """The demo app (not launched), reading a sample :func:`prepare_sample` wrote.

    Args:
        sample_dir: The prepared sample (default: :func:`default_sample_dir`; it is prepared
            when missing).
        work_dir: Where the app writes the files it hands out (default: a new temp folder).
        tabs: Only these tabs (keys of :data:`TABS`); default all three.
        max_upload_mb: Largest upload accepted, in MB (also Gradio's own upload limit).
        concurrency_limit: Jobs of one event that run at once.
        max_queue: Jobs that may wait in the queue; more are refused with a message.
        selected: The tab shown first (a key of :data:`TABS`; default the first).

    Raises:
        DemoSetupError: Bad options, or a tab cannot be built.
        MissingDependencyError: The apps extra is not installed.
    """
    try:
        import gradio as gr
    except ImportError as exc:
        raise MissingDependencyError(
            f'the demo needs gradio ({exc}): pip install "brrrr-demos[apps]"'
        ) from None
    if concurrency_limit < 1 or max_queue < 1 or max_upload_mb <= 0:
        raise DemoSetupError(
            f"concurrency_limit and max_queue must be ≥ 1 and max_upload_mb > 0, got "
            f"{concurrency_limit}, {max_queue}, {max_upload_mb}"
        )
    keys = _keys(tabs)
    if selected is not None and selected not in keys:
        raise DemoSetupError(f"selected tab {selected!r} is not one of {', '.join(keys)}")
    root = prepare_sample(sample_dir, tabs=keys)
    work = Path(work_dir) if work_dir is not None else Path(tempfile.mkdtemp(prefix="brrrr-demo-"))
    work.mkdir(parents=True, exist_ok=True)
    context = DemoContext(
        sample_dir=root,
        work_dir=work,
        max_upload_mb=max_upload_mb,
        concurrency_limit=concurrency_limit,
    )
    with gr.Blocks(title="neuroimaging-go-brrrr demos") as demo:
        gr.Markdown(
            "# neuroimaging-go-brrrr\n"
            "Dataset explorer, stroke-lesion segmentation and the generative atlas, on the "
            "built-in sample. Everything runs here: no network, no GPU needed."
        )
        with gr.Tabs(selected=selected or keys[0]):
            for key in keys:
                title, builder = TABS[key]
                with gr.Tab(title, id=key):
                    getattr(_module(key), builder)(context)
    demo.queue(max_size=max_queue, default_concurrency_limit=concurrency_limit)
    demo.brrrr_context = context
    return demo


def launch(
    demo: gr.Blocks,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    block: bool = True,
    share: bool = False,
) -> str:
    """Serve a demo from :func:`build_demo` and return its local URL.

    Args:
        demo: The app.
        host: Interface to listen on (``0.0.0.0`` on a Space or a server).
        port: Port (default: Gradio's, 7860, or the next free one).
        block: Keep serving until interrupted (``False``: return once it is up).
        share: A Gradio share link (needs a network; off by default).
    """
    context: DemoContext = demo.brrrr_context  # type: ignore[attr-defined]
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    demo.launch(
        server_name=host,
        server_port=port,
        prevent_thread_lock=True,
        share=share,
        inbrowser=False,
        quiet=True,
        show_error=True,
        allowed_paths=[str(context.work_dir), str(context.sample_dir)],
        max_file_size=int(context.max_upload_mb * 1_000_000),
    )
    url = str(demo.local_url)
    if block:
        print(f"brrrr demo running on {url} (Ctrl+C to stop)", flush=True)
        try:
            demo.block_thread()
        finally:
            demo.close()
    return url
