"""Test helpers: render pages in real headless Chromium, read the screenshots, serve Gradio apps.

The viewer draws with WebGL2, so its tests need a browser that really runs it. Chromium
(Debian's ``chromium`` package) does, headless and without a GPU, through SwiftShader
(software Vulkan/GL behind ANGLE): see :data:`CHROMIUM_FLAGS`. One :func:`capture` call
loads a page (a file or an ``http://127.0.0.1`` URL), lets it run for a budget of virtual
time, and returns both the final DOM and a PNG screenshot.

Pixels are read with Pillow (extra ``testing``: ``pip install "brrrr-demos[testing]"``).

Example:
    >>> from brrrr.demos import testing
    >>> shot = testing.capture("page.html", "page.png")  # doctest: +SKIP
    >>> testing.red_mask(shot.pixels()).mean()  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import html
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from brrrr.core.errors import MissingDependencyError
from brrrr.demos.errors import BrowserError

if TYPE_CHECKING:
    import gradio as gr

__all__ = [
    "CHROMIUM_FLAGS",
    "Capture",
    "capture",
    "find_chromium",
    "foreground_mask",
    "free_port",
    "gray_mask",
    "read_png",
    "red_mask",
    "serve_gradio",
    "viewer_states",
]

CHROMIUM_FLAGS: tuple[str, ...] = (
    "--headless",
    "--no-sandbox",  # root in containers and CI
    "--disable-gpu",  # no GPU process: WebGL goes through SwiftShader below
    "--use-angle=swiftshader",  # ANGLE on SwiftShader, a CPU implementation of GL
    "--enable-unsafe-swiftshader",  # allow WebGL on it (Chromium ≥ 137 refuses otherwise)
    "--disable-background-networking",
    # Nothing but this machine resolves: a page that needs a CDN fails the test.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-sync",
    "--no-default-browser-check",
    "--no-first-run",
    "--hide-scrollbars",
    "--mute-audio",
)
"""Flags :func:`capture` launches Chromium with (plus size, profile, budget, outputs)."""

_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
_STATUS = re.compile(r"<[^>]*\bdata-brrrr-status=\"([a-z]+)\"[^>]*>")


def find_chromium() -> str | None:
    """The Chromium executable: ``$BRRRR_CHROMIUM`` if set, else the first on ``PATH``."""
    override = os.environ.get("BRRRR_CHROMIUM")
    if override:
        return override
    for name in _CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


@dataclass(frozen=True)
class Capture:
    """What :func:`capture` saw.

    Attributes:
        dom: The page's DOM after the virtual-time budget, serialised as HTML.
        screenshot: The PNG file.
    """

    dom: str
    screenshot: Path

    def pixels(self) -> np.ndarray:
        """The screenshot as an ``(H, W, 3)`` uint8 RGB array."""
        return read_png(self.screenshot)


def _url(target: str | os.PathLike[str]) -> str:
    text = os.fspath(target)
    if re.match(r"^(https?|file|data|about):", text):
        return text
    path = Path(text).resolve()
    if not path.is_file():
        raise BrowserError("no such page to open", path=path)
    return path.as_uri()


def capture(
    target: str | os.PathLike[str],
    screenshot: str | os.PathLike[str],
    *,
    size: tuple[int, int] = (1200, 800),
    budget_ms: int = 20_000,
    timeout_s: float = 240.0,
    extra_flags: Sequence[str] = (),
) -> Capture:
    """Open a page in headless Chromium, let it run, and take its DOM and a screenshot.

    Args:
        target: A file path, or a URL (``http://127.0.0.1:PORT/``, ``file://…``).
        screenshot: Where to write the PNG.
        size: Window ``(width, height)`` in CSS pixels.
        budget_ms: Virtual time the page gets before the capture. Virtual time only
            advances while the page has no pending network request, so a slow server
            delays the capture instead of cutting it short.
        timeout_s: Wall-clock limit for the whole run.
        extra_flags: More Chromium flags.

    Returns:
        The :class:`Capture`.

    Raises:
        BrowserError: No Chromium, it failed, timed out, or wrote no screenshot.
    """
    executable = find_chromium()
    if executable is None:
        raise BrowserError(
            "headless Chromium is not installed: apt-get install -y chromium "
            "(or set BRRRR_CHROMIUM to its path)"
        )
    out = Path(screenshot).resolve()
    out.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="brrrr-chromium-") as profile:
        command = [
            executable,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            f"--window-size={size[0]},{size[1]}",
            f"--virtual-time-budget={budget_ms}",
            f"--screenshot={out}",
            "--dump-dom",
            *extra_flags,
            _url(target),
        ]
        try:
            done = subprocess.run(command, capture_output=True, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired:
            raise BrowserError(
                f"Chromium did not finish within {timeout_s:g} s", path=os.fspath(target)
            ) from None
        except OSError as exc:
            raise BrowserError(
                f"cannot start Chromium ({exc.strerror or exc})", path=executable
            ) from None
    if done.returncode != 0 or not out.is_file():
        tail = done.stderr.decode(errors="replace")[-2000:]
        raise BrowserError(
            f"Chromium exited with {done.returncode} and no screenshot:\n{tail}",
            path=os.fspath(target),
        )
    return Capture(dom=done.stdout.decode("utf-8", errors="replace"), screenshot=out)


def viewer_states(dom: str) -> list[dict[str, Any]]:
    """The state each viewer on a captured page reported (``data-brrrr-*`` attributes).

    Returns:
        One dict per viewer element, in page order: ``{"status": "ready"|"loading"|"error",
        "info": {...} | None, "error": str | None}``; ``info`` holds what NiiVue read back
        (each volume's ``dims`` and ``affine``, ``crosshair_mm``…).
    """
    states = []
    for match in _STATUS.finditer(dom):
        tag = match.group(0)
        state: dict[str, Any] = {"status": match.group(1), "info": None, "error": None}
        info = re.search(r"\bdata-brrrr-info=\"([^\"]*)\"", tag)
        if info:
            state["info"] = json.loads(html.unescape(info.group(1)))
        error = re.search(r"\bdata-brrrr-error=\"([^\"]*)\"", tag)
        if error:
            state["error"] = html.unescape(error.group(1))
        states.append(state)
    return states


def read_png(path: str | os.PathLike[str]) -> np.ndarray:
    """A PNG file as an ``(H, W, 3)`` uint8 RGB array.

    Raises:
        MissingDependencyError: Pillow is not installed (``pip install "brrrr-demos[testing]"``).
    """
    try:
        from PIL import Image
    except ImportError as exc:
        raise MissingDependencyError(
            f'reading screenshots needs Pillow ({exc}): pip install "brrrr-demos[testing]"'
        ) from None
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def foreground_mask(
    pixels: np.ndarray, *, background: Sequence[int] = (0, 0, 0), tolerance: int = 40
) -> np.ndarray:
    """``(H, W)`` bool: pixels farther than ``tolerance`` (any channel) from ``background``."""
    diff = np.abs(pixels.astype(np.int16) - np.asarray(background, dtype=np.int16))
    return np.asarray(diff.max(axis=-1) > tolerance)


def gray_mask(
    pixels: np.ndarray, *, low: int = 40, high: int = 235, spread: int = 30
) -> np.ndarray:
    """``(H, W)`` bool: mid-gray pixels, as a gray colormap draws tissue.

    Neither the black of an empty canvas (below ``low``) nor a white page (above ``high``),
    and no colour (channels within ``spread`` of each other).
    """
    rgb = pixels.astype(np.int16)
    mean = rgb.mean(axis=-1)
    chroma = rgb.max(axis=-1) - rgb.min(axis=-1)
    return np.asarray((chroma < spread) & (mean > low) & (mean < high))


def red_mask(pixels: np.ndarray, *, margin: int = 60) -> np.ndarray:
    """``(H, W)`` bool: clearly red pixels (red exceeds both green and blue by ``margin``)."""
    rgb = pixels.astype(np.int16)
    red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return np.asarray((red - np.maximum(green, blue)) > margin)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serve_gradio(app: gr.Blocks, *, port: int | None = None) -> Iterator[str]:
    """Launch a Gradio app on 127.0.0.1 for the duration of a ``with`` block.

    Gradio serves its own frontend from the installed package, so nothing is fetched from
    a network; analytics are switched off (``GRADIO_ANALYTICS_ENABLED=False``).

    Args:
        app: The ``gr.Blocks`` (or ``gr.Interface``) to serve.
        port: The port (default: a free one).

    Yields:
        The app's local URL, e.g. ``http://127.0.0.1:7861/``.
    """
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    app.launch(
        server_name="127.0.0.1",
        server_port=port or free_port(),
        prevent_thread_lock=True,
        quiet=True,
        share=False,
        inbrowser=False,
    )
    try:
        yield str(app.local_url)
    finally:
        app.close()
