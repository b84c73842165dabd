"""External commands as segmenters, with a real command: a small Python script written by
the test and run with sys.executable. Its failures (exit status, timeout, no output, wrong
grid, non-binary or NaN mask, no such program) are SegmentationErrors with stderr."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from brrrr.core import load_volume
from brrrr.models.segmentation import ExternalCommandSegmenter, SegmentationError
from brrrr.models.segmentation.external import fill_template
from brrrr.models.segmentation.preprocessing import same_grid
from brrrr.models.segmentation.synthetic import synthetic_stroke_case

# The tool: lesion = bright DWI and dark ADC (ADC resampled onto the DWI grid by the tool,
# which asks brrrr to write inputs on the reference grid when it gets --aligned).
TOOL = r"""
import argparse, sys
import numpy as np
from brrrr.core import Volume, load_volume, save_volume

parser = argparse.ArgumentParser()
parser.add_argument("--dwi", required=True)
parser.add_argument("--adc", required=True)
parser.add_argument("--flair")
parser.add_argument("--out", required=True)
parser.add_argument("--mode", default="good")
args = parser.parse_args()
print(f"flair given: {args.flair is not None}", file=sys.stderr)
dwi, adc = load_volume(args.dwi, dtype="float32"), load_volume(args.adc, dtype="float32")
if args.mode == "fail":
    print("CUDA out of memory (pretend)", file=sys.stderr)
    sys.exit(3)
if args.mode == "sleep":
    import time
    print("thinking...", file=sys.stderr, flush=True)
    time.sleep(30)
if args.mode == "nothing":
    sys.exit(0)
brain = dwi.data > 0
mask = (dwi.data > 1.4 * np.median(dwi.data[brain])) & (adc.data < 0.8 * np.median(adc.data[brain]))
data, affine = mask.astype(np.uint8), dwi.affine
if args.mode == "grid":
    affine = affine.copy(); affine[0, 3] += 1.0
if args.mode == "shape":
    data = data[1:]
if args.mode == "labels":
    data = data * 2
if args.mode == "nan":
    data = data.astype(np.float32); data[0, 0, 0] = np.nan
save_volume(Volume(data, affine), args.out)
"""


@pytest.fixture(scope="module")
def tool(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tool") / "lesion_tool.py"
    path.write_text(TOOL)
    return path


@pytest.fixture(scope="module")
def case():  # type: ignore[no-untyped-def]
    return synthetic_stroke_case(5, shape=(42, 51, 42), spacing=4.0)


def _segmenter(tool: Path, mode: str = "good", **kwargs: object) -> ExternalCommandSegmenter:
    command = [
        sys.executable, str(tool), "--dwi", "{dwi}", "--adc", "{adc}",
        "--flair", "{flair}", "--out", "{output}", "--mode", mode,
    ]  # fmt: skip
    options: dict[str, object] = {
        "channels": ("dwi", "adc"),
        "optional_channels": ("flair",),
        "inputs_on": "reference",
        "timeout_s": 60,
        **kwargs,
    }
    return ExternalCommandSegmenter(command, **options)  # type: ignore[arg-type]


def test_a_real_command_segments_on_the_reference_grid(tool: Path, case) -> None:  # type: ignore[no-untyped-def]
    inputs = {**case.inputs(), "adc": case.adc.reorient("LPS")}  # the tool needs one grid
    result = _segmenter(tool).segment(inputs)
    assert same_grid(result.mask, case.dwi)
    dwi, adc = case.dwi.data, case.adc.data
    brain = dwi > 0
    expected = (dwi > 1.4 * np.median(dwi[brain])) & (adc < 0.8 * np.median(adc[brain]))
    np.testing.assert_array_equal(result.mask.data, expected)
    np.testing.assert_array_equal(result.probability.data, expected.astype(np.float32))


def test_inputs_on_their_own_grids_and_custom_names(tmp_path: Path, case) -> None:  # type: ignore[no-untyped-def]
    script = tmp_path / "folder_tool.py"
    script.write_text(
        "import sys, shutil, pathlib\n"
        "folder = pathlib.Path(sys.argv[1])\n"
        "print(sorted(p.name for p in folder.iterdir()), file=sys.stderr)\n"
        "from brrrr.core import load_volume, save_volume, Volume\n"
        "dwi = load_volume(folder / 'case_0000.nii.gz')\n"
        "adc = load_volume(folder / 'case_0001.nii.gz')\n"
        "assert adc.axcodes == 'LPS', adc.axcodes\n"
        "save_volume(Volume((dwi.data > 0).astype('uint8'), dwi.affine), sys.argv[2] + '/case.nii.gz')\n"
    )
    segmenter = ExternalCommandSegmenter(
        [sys.executable, str(script), "{input_dir}", "{output_dir}"],
        channels=("dwi", "adc"),
        input_names={"dwi": "case_0000.nii.gz", "adc": "case_0001.nii.gz"},
        output_name="case.nii.gz",
    )
    result = segmenter.segment({"dwi": case.dwi, "adc": case.adc.reorient("LPS")})
    np.testing.assert_array_equal(result.mask.data, case.dwi.data > 0)


def test_fill_template_drops_a_missing_optional_argument_and_its_flag() -> None:
    template = ["tool", "--dwi", "{dwi}", "--flair", "{flair}", "-o", "{output}"]
    values = {"dwi": "d.nii", "output": "m.nii"}
    assert fill_template(template, values, optional=["flair"]) == [
        "tool",
        "--dwi",
        "d.nii",
        "-o",
        "m.nii",
    ]
    assert fill_template(["x", "--in={dwi}"], values) == ["x", "--in=d.nii"]
    with pytest.raises(SegmentationError, match=r"names \{t1\}"):
        fill_template(["tool", "{t1}"], values)


def test_flair_is_passed_only_when_given(tool: Path, case, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # The tool reports on stderr whether it got --flair; make it fail to see its stderr.
    with pytest.raises(SegmentationError, match="flair given: False"):
        _segmenter(tool, "fail").segment(case.inputs(flair=False))
    with pytest.raises(SegmentationError, match="flair given: True"):
        _segmenter(tool, "fail").segment(case.inputs())


def test_non_zero_exit_carries_the_stderr_tail(tool: Path, case) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SegmentationError, match="exited with status 3") as error:
        _segmenter(tool, "fail").segment(case.inputs())
    assert "CUDA out of memory (pretend)" in str(error.value)
    assert "lesion_tool.py" in str(error.value)  # the command is shown


def test_timeout_kills_the_command(tool: Path, case) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SegmentationError, match="ran past its timeout of 4 s") as error:
        _segmenter(tool, "sleep", timeout_s=4).segment(case.inputs())
    assert "thinking..." in str(error.value)


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("nothing", "wrote no mask at mask.nii.gz"),
        ("grid", r"affine differing from the dwi input's by up to 1 mm"),
        ("shape", r"has shape \(41, 51, 42\)"),
        ("labels", "not binary: it holds 2"),
        ("nan", "NaN"),
    ],
)
def test_bad_output_is_refused_naming_the_file(tool: Path, case, mode: str, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SegmentationError, match=message) as error:
        _segmenter(tool, mode).segment(case.inputs())
    assert error.value.path is not None
    assert error.value.path.endswith("mask.nii.gz")


def test_missing_program_and_bad_templates(case) -> None:  # type: ignore[no-untyped-def]
    segmenter = ExternalCommandSegmenter(
        ["brrrr-no-such-tool-xyz", "{dwi}", "{output}"], channels=("dwi",)
    )
    with pytest.raises(SegmentationError, match="no such program"):
        segmenter.segment(case.inputs())
    with pytest.raises(SegmentationError, match=r"names \{t2\}"):
        ExternalCommandSegmenter(["tool", "{t2}"], channels=("dwi",))
    with pytest.raises(SegmentationError, match="list of arguments"):
        ExternalCommandSegmenter("tool {dwi}", channels=("dwi",))  # type: ignore[arg-type]
    with pytest.raises(SegmentationError, match="reserved"):
        ExternalCommandSegmenter(["tool"], channels=("output",))


def test_written_mask_file_is_readable_by_brrrr(tool: Path, case, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    segmenter = _segmenter(tool, workdir=tmp_path / "work")
    result = segmenter.segment(case.inputs())
    assert (tmp_path / "work").is_dir()
    assert not any((tmp_path / "work").iterdir())
    from brrrr.core import save_volume

    path = save_volume(result.mask, tmp_path / "mask.nii.gz")
    assert same_grid(load_volume(path), case.dwi)
