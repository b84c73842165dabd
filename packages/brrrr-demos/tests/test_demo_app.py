"""The whole demo served on 127.0.0.1: every endpoint through gradio_client, bad uploads, each tab
drawn in headless Chromium (the screenshots in the README and docs come from here).

All slow: building the app prepares the three tabs' sample and segments a first case.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest

from brrrr.core import load_volume
from brrrr.demos import testing

pytestmark = pytest.mark.slow

gradio_client = pytest.importorskip("gradio_client")
pytest.importorskip("gradio")

from brrrr.demos.apps import stroke  # noqa: E402
from brrrr.demos.apps.app import build_demo, launch  # noqa: E402
from brrrr.demos.apps.explorer import sample_folders  # noqa: E402

Keep = Callable[[testing.Capture, str], None]
ENDPOINTS = {
    "/segment",
    "/explorer_open",
    "/explorer_filter",
    "/explorer_show",
    "/atlas_generate",
    "/atlas_peaks",
}


@pytest.fixture(scope="module")
def sample_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ["HF_HUB_OFFLINE"] = "1"
    return tmp_path_factory.mktemp("demo-sample")


@pytest.fixture(scope="module")
def served(sample_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    app = build_demo(sample_dir, work_dir=tmp_path_factory.mktemp("demo-work"), max_upload_mb=8)
    url = launch(app, port=testing.free_port(), block=False)
    try:
        yield url
    finally:
        app.close()


@pytest.fixture(scope="module")
def client(served: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    downloads = tmp_path_factory.mktemp("client-downloads")
    return gradio_client.Client(served, verbose=False, download_files=str(downloads))


def _case(sample_dir: Path, case_id: str = "case-000") -> stroke.StrokeCase:
    return stroke.sample_cases(sample_dir)[case_id]


def test_the_app_lists_each_tabs_endpoints(client: Any) -> None:
    api = client.view_api(print_info=False, return_format="dict")
    assert set(api["named_endpoints"]) == ENDPOINTS


def test_segment_a_sample_case(client: Any, sample_dir: Path) -> None:
    html, summary, metrics, mask_path = client.predict(
        "case-000", None, None, None, None, stroke.SHIPPED, "mean", 0.5, api_name="/segment"
    )
    assert 'class="brrrr-viewer"' in html
    assert summary["lesion_count"] >= 1
    assert summary["lesion_volume_ml"] > 0
    assert metrics["dice"] > 0.7
    mask = load_volume(mask_path)  # the download is a whole NIfTI on the DWI's grid
    dwi = load_volume(_case(sample_dir).dwi)
    assert mask.shape == dwi.shape
    assert np.allclose(mask.affine, dwi.affine)
    assert set(np.unique(mask.data)) <= {0, 1}


def test_segment_uploads_with_a_ground_truth(client: Any, sample_dir: Path) -> None:
    case = _case(sample_dir, "case-001")
    handle = gradio_client.handle_file
    _, summary, metrics, mask_path = client.predict(
        None,
        handle(str(case.dwi)),
        handle(str(case.adc)),
        None,
        handle(str(case.mask)),
        stroke.SHIPPED,
        "mean",
        0.5,
        api_name="/segment",
    )
    truth = load_volume(case.mask).data > 0
    predicted = load_volume(mask_path).data > 0
    dice = 2 * (truth & predicted).sum() / (truth.sum() + predicted.sum())
    assert metrics["dice"] == pytest.approx(dice, abs=1e-4)
    assert summary["lesion_count"] >= 1


def test_the_ensemble_fuses_three_members(client: Any) -> None:
    _, summary, metrics, _ = client.predict(
        "case-000", None, None, None, None, stroke.ENSEMBLE, "majority", 0.5, api_name="/segment"
    )
    assert len(summary["member_volumes_ml"]) == 3
    assert metrics["dice"] > 0.7


def _bad_upload(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / ("bad.nii" if kind == "flat" else "bad.nii.gz")
    if kind == "truncated":
        payload = gzip.compress(
            nib.Nifti1Image(np.ones((16, 16, 16), np.float32), np.eye(4)).to_bytes()
        )
        path.write_bytes(payload[: len(payload) // 2])
    elif kind == "text":
        path.write_text("not an image")
    elif kind == "flat":
        nib.Nifti1Image(np.ones((32, 32, 1), np.float32), np.eye(4)).to_filename(path)
    return path


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("truncated", "gzip stream is truncated"),
        ("text", "not a NIfTI or MGZ file"),
        ("flat", "2-D image"),
    ],
)
def test_a_bad_upload_is_a_message_not_a_traceback(
    client: Any, sample_dir: Path, tmp_path: Path, kind: str, expected: str
) -> None:
    bad = _bad_upload(tmp_path, kind)
    handle = gradio_client.handle_file
    with pytest.raises(gradio_client.exceptions.AppError) as caught:
        client.predict(
            None,
            handle(str(bad)),
            handle(str(_case(sample_dir).adc)),
            None,
            None,
            stroke.SHIPPED,
            "mean",
            0.5,
            api_name="/segment",
        )
    message = str(caught.value)
    assert expected in message
    assert bad.name in message
    assert "Traceback" not in message


def test_an_upload_over_the_limit_is_refused(client: Any, tmp_path: Path) -> None:
    big = tmp_path / "big.nii"
    nib.Nifti1Image(np.zeros((220, 220, 220), np.float32), np.eye(4)).to_filename(big)  # 42 MB
    with pytest.raises(ValueError, match="exceeds the maximum file size") as caught:
        client.predict(
            None,
            gradio_client.handle_file(str(big)),
            None,
            None,
            None,
            stroke.SHIPPED,
            "mean",
            0.5,
            api_name="/segment",
        )
    assert big.name in str(caught.value)  # refused before it is sent, the file named


def test_explorer_open_filter_show(client: Any, sample_dir: Path) -> None:
    folder = str(next(iter(sample_folders(sample_dir).values())))  # the to-hf output
    opened = client.predict(folder, api_name="/explorer_open")
    summary, table = opened[0], opened[-2]
    assert "15 images of 3 subjects" in summary
    rows = table["data"]
    assert rows
    api = client.view_api(print_info=False, return_format="dict")
    filter_names = [
        p["parameter_name"] for p in api["named_endpoints"]["/explorer_filter"]["parameters"]
    ]
    count, filtered = client.predict(folder, api_name="/explorer_filter")
    assert len(filtered["data"]) == len(rows)
    assert str(len(rows)) in str(count)
    assert filter_names[0] == "path"
    first = rows[0][0]
    html, sidecar, header, caption = client.predict(folder, first, api_name="/explorer_show")
    assert 'class="brrrr-viewer"' in html
    assert isinstance(sidecar, dict)
    assert len(header["nifti"]["dim"]) == 8  # the image's own header, beside the row's columns
    assert header["columns"]
    assert caption


def test_explorer_names_a_folder_that_is_not_a_dataset(client: Any, tmp_path: Path) -> None:
    with pytest.raises(gradio_client.exceptions.AppError) as caught:
        client.predict(str(tmp_path), api_name="/explorer_open")
    assert str(tmp_path) in str(caught.value)


def test_atlas_generate_and_peaks(client: Any) -> None:
    html, summary, map_path, _ = client.predict(api_name="/atlas_generate")
    assert 'class="brrrr-viewer"' in html
    assert isinstance(summary, dict)
    generated = load_volume(map_path)
    assert generated.shape == (91, 109, 91)  # the 2 mm MNI152 grid
    assert np.isfinite(generated.data).all()
    _, peaks, csv_path = client.predict(api_name="/atlas_peaks")
    assert peaks["clouds"] >= 1
    assert Path(csv_path).read_text().startswith("sample,x,y,z")


def _pure_red(pixels: np.ndarray) -> int:
    """Pixels of NiiVue's red overlay (not the orange of gradio's buttons and sliders)."""
    r, g, b = (pixels[..., i].astype(int) for i in range(3))
    return int(((r > 150) & (g < 90) & (b < 90)).sum())


def _yellow(pixels: np.ndarray) -> int:
    """Yellow pixels: the top of the warm colormap of the atlas map (gradio draws none)."""
    r, g, b = (pixels[..., i].astype(int) for i in range(3))
    return int(((r > 200) & (g > 170) & (b < 110)).sum())


@pytest.mark.parametrize("tab", ["explorer", "stroke", "atlas"])
def test_each_tab_draws_in_chromium(
    chromium: str, sample_dir: Path, tmp_path: Path, tab: str, keep_screenshot: Keep
) -> None:
    app = build_demo(sample_dir, work_dir=tmp_path / "work", selected=tab)
    url = launch(app, port=testing.free_port(), block=False)
    try:
        height = {"explorer": 1750, "stroke": 1000, "atlas": 1100}[tab]  # down to the viewer
        shot = testing.capture(url, tmp_path / f"{tab}.png", size=(1280, height), budget_ms=30_000)
    finally:
        app.close()
    assert "neuroimaging-go-brrrr" in shot.dom  # gradio's frontend rendered the app
    # The viewer is an iframe (its page is not in the dumped DOM): judge it by the pixels.
    assert 'class="brrrr-viewer"' in shot.dom
    pixels = shot.pixels()
    tissue, red, hot = testing.gray_mask(pixels).mean(), _pure_red(pixels), _yellow(pixels)
    print(f"{tab}: gray {tissue:.3f} of the page, {red} red, {hot} yellow pixels")
    assert tissue > 0.03  # the drawn brain, not just the white page
    if tab == "stroke":
        assert red > 20  # the mask overlay, where the crosshair sits
    if tab == "atlas":
        assert hot > 200  # the generated map's colours over the template
    keep_screenshot(shot, f"demo-{tab}")
