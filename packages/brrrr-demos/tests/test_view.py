"""View: its spec and standalone page, and the page drawn by NiiVue in real headless Chromium."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from brrrr.core import Volume, samples
from brrrr.core.errors import FileWriteError
from brrrr.demos import testing
from brrrr.demos.errors import ViewerError
from brrrr.demos.viewer import Layer, View, niivue_bundle

Keep = Callable[[testing.Capture, str], None]


def _spec_of_page(page: str) -> dict[str, object]:
    match = re.search(
        r'<script type="application/json" id="brrrr-viewer-spec">(.*?)</script>', page, re.S
    )
    assert match is not None
    return dict(json.loads(match.group(1)))


def test_spec_describes_layers_layout_and_crosshair(phantom: tuple[Volume, Volume]) -> None:
    image, lesion = phantom
    view = View(
        [Layer(image), Layer(lesion, colormap="red", opacity=0.6)],
        crosshair=(-30, 12, 16),
        slice_type="axial",
        convention="radiological",
    )
    spec = view.spec()
    assert [layer["colormap"] for layer in spec["layers"]] == ["gray", "red"]
    assert [layer["opacity"] for layer in spec["layers"]] == [1.0, 0.6]
    assert spec["layers"][1]["cal_min"] == 0.0
    assert spec["layers"][1]["cal_max"] == 1.0
    assert spec["slice_type"] == 0  # NiiVue's SLICE_TYPE.AXIAL
    assert spec["crosshair_mm"] == [-30.0, 12.0, 16.0]
    assert spec["radiological"] is True
    assert spec["niivue_version"] == niivue_bundle().version
    json.dumps(spec)


def test_one_volume_or_path_is_a_view(tmp_path: Path, phantom: tuple[Volume, Volume]) -> None:
    image, _ = phantom
    assert len(View(image).layers) == 1
    assert View(image).spec()["slice_type"] == 3  # multiplanar
    assert View(image).crosshair is None
    from brrrr.core import save_volume

    path = save_volume(image, tmp_path / "t1.nii.gz")
    assert View(path).layers[0].label(0) == "t1"
    assert View([image, path]).layers[1].colormap == "gray"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"crosshair": (1.0, 2.0)}, "crosshair must be 3 finite world coordinates"),
        ({"crosshair": (1.0, 2.0, float("inf"))}, "crosshair must be 3 finite"),
        ({"slice_type": "oblique"}, "slice_type must be one of"),
        ({"convention": "left"}, "convention must be"),
        ({"height": 10}, "height must be at least 64"),
        ({"background": (0, 0, 0)}, "background must be 4 numbers"),
        ({"crosshair_color": (2, 0, 0, 1)}, "crosshair_color must be 4 numbers"),
    ],
)
def test_bad_view_options(
    options: dict[str, object], message: str, phantom: tuple[Volume, Volume]
) -> None:
    with pytest.raises(ViewerError, match=message):
        View(phantom[0], **options)  # type: ignore[arg-type]


def test_no_layers() -> None:
    with pytest.raises(ViewerError, match="at least one layer"):
        View([])


def test_page_inlines_niivue_and_loads_nothing_by_url(phantom: tuple[Volume, Volume]) -> None:
    image, lesion = phantom
    view = View([Layer(image), Layer(lesion, colormap="red")])
    page = view.html()
    assert page.startswith("<!doctype html>")
    assert niivue_bundle().path.read_text() in page  # the whole bundle, verbatim
    assert not re.search(r"<(script|link|img|iframe)[^>]*\b(src|href)=", page)
    assert _spec_of_page(page) == view.spec()


def test_layer_names_cannot_break_out_of_the_page(phantom: tuple[Volume, Volume]) -> None:
    name = "</script><script>alert(1)</script><!--"
    view = View(Layer(phantom[0], name=name), title="<b>x</b>")
    page = view.html()
    assert "alert(1)</script>" not in page
    assert "<title>&lt;b&gt;x&lt;/b&gt;</title>" in page
    assert _spec_of_page(page)["layers"][0]["name"] == name + ".nii.gz"  # type: ignore[index]


def test_to_html_writes_the_page(tmp_path: Path, phantom: tuple[Volume, Volume]) -> None:
    view = View(phantom[0])
    path = view.to_html(tmp_path / "view.html")
    assert path.read_text(encoding="utf-8") == view.html()
    with pytest.raises(FileWriteError, match="no-such-folder"):
        view.to_html(tmp_path / "no-such-folder" / "view.html")


def test_repr_html_is_the_page_in_an_iframe(phantom: tuple[Volume, Volume]) -> None:
    view = View(phantom[0], height=300)
    snippet = view._repr_html_()
    assert snippet.startswith('<iframe class="brrrr-viewer"')
    assert "height:300px" in snippet
    srcdoc = re.search(r'srcdoc="([^"]*)"', snippet)
    assert srcdoc is not None
    assert html.unescape(srcdoc.group(1)) == view.html()
    assert repr(view).startswith("View([Layer('layer0', shape=(64, 76, 64), colormap='gray'")


# -- in the browser -----------------------------------------------------------------------


def _shoot(view: View, folder: Path, name: str) -> testing.Capture:
    page = view.to_html(folder / f"{name}.html")
    return testing.capture(page, folder / f"{name}.png", size=(800, 600))


def _ready(shot: testing.Capture) -> dict[str, object]:
    (state,) = testing.viewer_states(shot.dom)
    assert state["status"] == "ready", state
    info = state["info"]
    assert isinstance(info, dict)
    return info


@pytest.mark.slow
def test_standalone_page_draws_the_volume_and_the_red_mask(
    chromium: str,
    tmp_path: Path,
    phantom: tuple[Volume, Volume],
    lesion_mm: tuple[float, float, float],
    keep_screenshot: Keep,
) -> None:
    image, lesion = phantom
    view = View([Layer(image), Layer(lesion, colormap="red", opacity=0.7)], crosshair=lesion_mm)
    shot = _shoot(view, tmp_path, "standalone")
    info = _ready(shot)
    # NiiVue read back the geometry we wrote: same grid, same voxel->world affine.
    for read in info["volumes"]:  # type: ignore[attr-defined]
        assert read["dims"] == list(image.shape)
        np.testing.assert_allclose(read["affine"], image.affine, atol=1e-4)
    np.testing.assert_allclose(info["crosshair_mm"], lesion_mm, atol=1e-3)  # type: ignore[arg-type]
    assert info["unknown_colormaps"] == []
    pixels = shot.pixels()
    drawn, tissue = testing.foreground_mask(pixels).mean(), testing.gray_mask(pixels).mean()
    red = testing.red_mask(pixels).mean()
    print(f"standalone: drawn {drawn:.3f}, gray {tissue:.3f}, red {red:.4f} of {pixels.shape[:2]}")
    assert drawn > 0.2
    assert tissue > 0.15
    assert red > 0.001  # the lesion, red, where the mask is
    keep_screenshot(shot, "demos-viewer-standalone")


@pytest.mark.slow
def test_red_appears_only_on_slices_through_the_lesion(
    chromium: str,
    tmp_path: Path,
    phantom: tuple[Volume, Volume],
    lesion_mm: tuple[float, float, float],
) -> None:
    image, lesion = phantom
    layers = [Layer(image), Layer(lesion, colormap="red", opacity=0.7)]
    through = _shoot(View(layers, crosshair=lesion_mm, slice_type="axial"), tmp_path, "through")
    away = _shoot(View(layers, crosshair=(0.0, 0.0, -50.0), slice_type="axial"), tmp_path, "away")
    red_through = testing.red_mask(through.pixels()).mean()
    red_away = int(testing.red_mask(away.pixels()).sum())
    print(f"axial through the lesion: red {red_through:.4f}; 66 mm below it: {red_away} red pixels")
    assert red_through > 0.002
    assert red_away == 0
    assert testing.gray_mask(away.pixels()).mean() > 0.1  # the head is still drawn
    np.testing.assert_allclose(_ready(away)["crosshair_mm"], [0.0, 0.0, -50.0], atol=1e-3)  # type: ignore[arg-type]


def _centroid_x(mask: np.ndarray) -> float:
    return float(np.nonzero(mask)[1].mean())


@pytest.mark.slow
def test_left_lesion_is_on_the_left_in_neurological_and_mirrored_in_radiological(
    chromium: str,
    tmp_path: Path,
    phantom: tuple[Volume, Volume],
    lesion_mm: tuple[float, float, float],
) -> None:
    image, lesion = phantom
    layers = [Layer(image), Layer(lesion, colormap="red", opacity=0.7)]
    for convention, side in (("neurological", -1), ("radiological", 1)):
        view = View(layers, crosshair=lesion_mm, slice_type="axial", convention=convention)  # type: ignore[arg-type]
        pixels = _shoot(view, tmp_path, convention).pixels()
        head = _centroid_x(testing.foreground_mask(pixels))
        red = _centroid_x(testing.red_mask(pixels))
        # x = -30 mm is 30 mm from the midline: clearly on one side of the head's centre.
        assert np.sign(red - head) == side, (convention, red, head)
        assert abs(red - head) > 20


@pytest.mark.slow
def test_the_same_head_stored_lps_draws_the_same_picture(
    chromium: str, tmp_path: Path, lesion_mm: tuple[float, float, float]
) -> None:
    shots = {}
    for axcodes in ("RAS", "LPS"):
        image, lesion = samples.lesion_phantom(
            shape=(64, 76, 64), spacing=3.0, axcodes=axcodes, noise=0.0
        )
        view = View(
            [Layer(image), Layer(lesion, colormap="red", opacity=0.7)],
            crosshair=lesion_mm,
            slice_type="axial",
        )
        shot = _shoot(view, tmp_path, axcodes)
        np.testing.assert_allclose(_ready(shot)["volumes"][0]["affine"], image.affine, atol=1e-4)  # type: ignore[index]
        shots[axcodes] = shot.pixels()
    ras, lps = (testing.red_mask(shots[k]) for k in ("RAS", "LPS"))
    overlap = (ras & lps).sum() / (ras | lps).sum()
    assert ras.sum() > 0
    assert overlap > 0.9
    difference = np.abs(shots["RAS"].astype(int) - shots["LPS"].astype(int)).max(axis=-1)
    assert (difference > 60).mean() < 0.01


@pytest.mark.slow
def test_without_webgl_the_page_says_so(
    chromium: str, tmp_path: Path, phantom: tuple[Volume, Volume]
) -> None:
    page = View(phantom[0]).to_html(tmp_path / "nogl.html")
    shot = testing.capture(
        page, tmp_path / "nogl.png", size=(600, 300), extra_flags=["--disable-3d-apis"]
    )
    (state,) = testing.viewer_states(shot.dom)
    assert state["status"] == "error"
    assert state["error"] == "this browser has no WebGL2, which NiiVue needs"
    assert "brrrr viewer: this browser has no WebGL2" in shot.dom  # shown to the person too
