"""brrrr.demos.testing: pixel masks, PNG reading, the DOM states, Chromium errors."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest

from brrrr.demos import testing
from brrrr.demos.errors import BrowserError


def test_masks_tell_background_gray_and_red_apart() -> None:
    pixels = np.array(
        [
            [[0, 0, 0], [10, 12, 9], [128, 128, 128], [255, 255, 255]],
            [[255, 0, 0], [200, 60, 50], [200, 150, 150], [30, 200, 30]],
        ],
        dtype=np.uint8,
    )
    assert testing.foreground_mask(pixels).tolist() == [
        [False, False, True, True],
        [True, True, True, True],
    ]
    assert testing.gray_mask(pixels).tolist() == [
        [False, False, True, False],
        [False, False, False, False],
    ]
    assert testing.red_mask(pixels).tolist() == [
        [False, False, False, False],
        [True, True, False, False],
    ]


def test_read_png_gives_rgb(tmp_path: Path) -> None:
    image = pytest.importorskip("PIL.Image")
    rgba = np.zeros((3, 5, 4), dtype=np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = 255
    image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    pixels = testing.read_png(tmp_path / "a.png")
    assert pixels.shape == (3, 5, 3)
    assert pixels.dtype == np.uint8
    assert (pixels[..., 0] == 200).all()


def test_viewer_states_read_the_data_attributes() -> None:
    dom = (
        '<div id="a" data-brrrr-status="ready" data-brrrr-info="{&quot;crosshair_mm&quot;:[1,2,3]}"></div>'
        '<div data-brrrr-status="error" data-brrrr-error="no WebGL2 &amp; more"></div>'
    )
    assert testing.viewer_states(dom) == [
        {"status": "ready", "info": {"crosshair_mm": [1, 2, 3]}, "error": None},
        {"status": "error", "info": None, "error": "no WebGL2 & more"},
    ]


def test_capture_errors_name_what_failed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    page = tmp_path / "page.html"
    page.write_text("<p>x</p>")
    monkeypatch.setenv("BRRRR_CHROMIUM", str(tmp_path / "no-chromium"))
    with pytest.raises(BrowserError, match="no-chromium: cannot start Chromium"):
        testing.capture(page, tmp_path / "shot.png")
    with pytest.raises(BrowserError, match=r"missing\.html: no such page"):
        testing.capture(tmp_path / "missing.html", tmp_path / "shot.png")


def test_no_chromium_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BRRRR_CHROMIUM", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert testing.find_chromium() is None
    with pytest.raises(BrowserError, match="apt-get install -y chromium"):
        testing.capture("about:blank", tmp_path / "shot.png")


def test_free_port_is_bindable() -> None:
    port = testing.free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


@pytest.mark.slow
def test_capture_takes_dom_and_screenshot(chromium: str, tmp_path: Path) -> None:
    page = tmp_path / "page.html"
    page.write_text(
        '<body style="margin:0;background:#f00"><div id="d"></div>'
        "<script>document.getElementById('d').dataset.brrrrStatus = 'ready';</script></body>"
    )
    shot = testing.capture(page, tmp_path / "page.png", size=(200, 100))
    assert testing.viewer_states(shot.dom) == [{"status": "ready", "info": None, "error": None}]
    pixels = shot.pixels()
    assert pixels.shape == (100, 200, 3)
    assert testing.red_mask(pixels).all()
