"""The Stroke segmentation tab: segment a sample case or uploaded DWI/ADC/(FLAIR), look, score.

* **Inputs**: a case of the built-in stroke sample (:func:`prepare` writes three synthetic cases
  with their ground truth), or uploads (DWI and ADC required, FLAIR and a ground-truth mask
  optional), each checked by :func:`~brrrr.demos.apps.uploads.read_upload` (size limit, type
  sniffing, truncated gzip, 2-D, NaN) so a bad file is a message in the UI, never a traceback.
* **Model**: the lesion model shipped with brrrr-models (**trained on synthetic data only**),
  or a DeepISLES-style ensemble of three members combined by mean probability, majority vote
  or STAPLE. The members are views of the shipped model (plain; flip test-time augmentation;
  DWI + ADC only) plus every model named in ``$BRRRR_STROKE_MODELS`` (paths separated by
  ``os.pathsep``: weights files with their config, configs, or nnU-Net v2 folders, as
  :func:`~brrrr.models.segmentation.load_segmenter` reads them), which also appear alone.
* **Segment** (``api_name="segment"``): the mask on the DWI grid over the DWI in the NiiVue
  viewer (ground truth in green when known), lesion volume (ml) and count (26-connected), the
  ISLES'22 metrics (Dice, absolute volume difference, lesion-count difference, lesion-wise F1,
  HD95) when a ground truth is known, and the mask as a NIfTI download.

The work is :func:`segment_case` (no Gradio needed); :func:`build_stroke_tab` wires it up.

Example:
    >>> from pathlib import Path
    >>> prepare(Path("sample"))  # doctest: +SKIP
    >>> result = segment_case(Path("sample"), Path("work"), case="case-000")  # doctest: +SKIP
    >>> round(result.metrics["dice"], 2)  # doctest: +SKIP
    0.93
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from brrrr.core.errors import BrrrrError, MissingDependencyError
from brrrr.demos.apps.uploads import read_upload
from brrrr.demos.errors import DemoInputError, DemoSetupError

if TYPE_CHECKING:
    from brrrr.core import Volume
    from brrrr.demos.apps.context import DemoContext
    from brrrr.demos.viewer import View
    from brrrr.models.segmentation import Segmenter

__all__ = [
    "ENSEMBLE",
    "ENSEMBLE_METHODS",
    "MODELS_ENV",
    "SAMPLE_CASES",
    "SHIPPED",
    "StrokeResult",
    "build_stroke_tab",
    "model_choices",
    "prepare",
    "sample_cases",
    "segment_case",
    "stroke_view",
]

SHIPPED = "synthetic-lesion (shipped, synthetic data only)"
"""Model choice: the lesion SegResNet shipped with brrrr-models."""
ENSEMBLE = "ensemble (3+ members)"
"""Model choice: the ensemble (see the module docstring)."""
ENSEMBLE_METHODS = ("mean", "majority", "staple")
"""How the ensemble combines its members."""
MODELS_ENV = "BRRRR_STROKE_MODELS"
"""Environment variable: more models for the tab, paths separated by ``os.pathsep``."""
SAMPLE_CASES = 3
"""Cases :func:`prepare` writes."""
_FOLDER = "stroke"
_SEED = 0


def prepare(sample_dir: Path) -> None:
    """Write the synthetic stroke sample (DWI, ADC, FLAIR, ground truth) into ``sample_dir/stroke``.

    Idempotent: a complete earlier sample with the same settings is reused.
    """
    from brrrr.models.segmentation.sample import write_stroke_sample

    write_stroke_sample(Path(sample_dir) / _FOLDER, cases=SAMPLE_CASES, seed=_SEED)


def sample_cases(sample_dir: Path) -> dict[str, Any]:
    """The prepared cases by id (``case-000``…), as ``SampleCase`` records."""
    from brrrr.models.segmentation.sample import find_cases

    root = Path(sample_dir) / _FOLDER
    if not (root / "images").is_dir():
        raise DemoSetupError(
            "no prepared stroke sample here: run brrrr.demos.apps.stroke.prepare(sample_dir)",
            path=root,
        )
    found = {}
    for case in find_cases(root / "images"):
        labels = [root / "labels" / f"{case.case_id}{ext}" for ext in (".nii.gz", ".nii")]
        truth = next((p for p in labels if p.is_file()), None)
        found[case.case_id] = dataclasses.replace(case, mask=truth)
    return found


def _extra_models() -> dict[str, str]:
    raw = os.environ.get(MODELS_ENV, "")
    return {f"{Path(p).name} ({p})": p for p in raw.split(os.pathsep) if p.strip()}


def model_choices() -> list[str]:
    """The model dropdown: the shipped model, the ensemble, then ``$BRRRR_STROKE_MODELS``."""
    return [SHIPPED, ENSEMBLE, *_extra_models()]


def _dwi_adc_only(inner: Segmenter) -> Segmenter:
    """``inner`` shown DWI and ADC only (its FLAIR channel left out): an ensemble member."""
    from brrrr.models.segmentation import Segmenter

    class DwiAdcOnly(Segmenter):
        def predict(self, volumes: Mapping[str, Volume], *, reference: Volume) -> Volume:
            wanted = {k: v for k, v in volumes.items() if k in inner.channels}
            return inner.predict(wanted, reference=reference)

    return DwiAdcOnly(
        inner.channels,
        reference=inner.reference,
        threshold=inner.threshold,
        name=f"{inner.name} (DWI+ADC only)",
        source=inner.source,
    )


def _member_name(member: Segmenter) -> str:
    config = getattr(member, "config", None)
    flip = config is not None and getattr(config, "tta", "none") == "flip"
    return member.name + (" + flip TTA" if flip else "")


@functools.lru_cache(maxsize=8)
def _segmenter(choice: str, method: str) -> Segmenter:
    from brrrr.models.segmentation import EnsembleSegmenter, load_segmenter

    extra = _extra_models()
    if choice not in (SHIPPED, ENSEMBLE, *extra):
        raise DemoInputError(f"unknown model {choice!r}; choose one of {model_choices()}")
    if choice == ENSEMBLE and method not in ENSEMBLE_METHODS:
        raise DemoInputError(f"unknown ensemble method {method!r}; choose {ENSEMBLE_METHODS}")
    if choice in extra:
        return load_segmenter(extra[choice])
    shipped = load_segmenter("synthetic-lesion")
    if choice == SHIPPED:
        return shipped
    members: list[Segmenter] = [
        shipped,
        shipped.with_options(tta="flip"),  # type: ignore[attr-defined]
        _dwi_adc_only(shipped),
    ]
    members += [load_segmenter(path) for path in extra.values()]
    return EnsembleSegmenter(members, method=method, name=f"ensemble ({method})")  # type: ignore[arg-type]


@dataclasses.dataclass(frozen=True)
class StrokeResult:
    """What one segmentation in the tab produced.

    Attributes:
        dwi: The DWI the mask is on.
        mask: The lesion mask (uint8, DWI grid).
        ground_truth: The ground truth on the DWI grid, when known.
        mask_path: The mask written as NIfTI (the download).
        summary: Model, inputs, lesion volume (ml) and count, per-member volumes.
        metrics: The ISLES'22 metrics (plus HD95) when a ground truth is known, else empty.
    """

    dwi: Volume
    mask: Volume
    ground_truth: Volume | None
    mask_path: Path
    summary: dict[str, Any]
    metrics: dict[str, float | int] = dataclasses.field(default_factory=dict)


def _uploaded(
    files: Mapping[str, str | os.PathLike[str] | None], max_mb: float
) -> tuple[dict[str, Volume], Volume | None, str]:
    given = {k: v for k, v in files.items() if v}
    for needed in ("dwi", "adc"):
        if needed not in given:
            raise DemoInputError(
                f"upload a {needed.upper()} volume too: the models need DWI and ADC "
                "(FLAIR and a ground truth are optional)"
            )
    names = {"dwi": "DWI", "adc": "ADC", "flair": "FLAIR", "gt": "ground-truth mask"}
    volumes = {
        key: read_upload(path, max_mb=max_mb, what=names[key])
        for key, path in given.items()
        if key != "gt"
    }
    truth = None
    if "gt" in given:
        truth = _binary(read_upload(given["gt"], max_mb=max_mb, what=names["gt"]))
    return volumes, truth, Path(os.fspath(given["dwi"])).name


def _binary(truth: Volume) -> Volume:
    """The ground truth as a uint8 0/1 mask; any other value is an error naming the file."""
    data = np.asarray(truth.data)
    values = np.unique(data)
    if not np.isin(values, (0, 1)).all():
        shown = ", ".join(f"{v:g}" for v in values[:6]) + (", …" if len(values) > 6 else "")
        raise DemoInputError(
            f"the ground-truth mask holds the values {shown}; a mask holds only 0 and 1",
            path=truth.source,
        )
    return truth.with_data(data.astype(np.uint8))


def _on_grid(truth: Volume, dwi: Volume) -> Volume:
    """The ground truth on the DWI grid (nearest neighbour when the grids differ)."""
    if truth.shape == dwi.shape and np.allclose(truth.affine, dwi.affine, atol=1e-4):
        return truth
    moved = truth.resample(like=dwi, interpolation="nearest")
    return moved.with_data(np.asarray(moved.data).round().astype(np.uint8))


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[:60] or "case"


def segment_case(
    sample_dir: Path,
    work_dir: Path,
    *,
    case: str | None = None,
    uploads: Mapping[str, str | os.PathLike[str] | None] | None = None,
    model: str = SHIPPED,
    method: str = "mean",
    threshold: float = 0.5,
    max_upload_mb: float = 256.0,
) -> StrokeResult:
    """Segment one case: a sample case, or uploads (they win when a DWI or ADC is uploaded).

    Args:
        sample_dir: The demo's sample folder (:func:`prepare` wrote ``stroke/`` there).
        work_dir: Where the mask is written (``stroke/<case>-<key>_mask.nii.gz``).
        case: A sample case id (``case-000``…).
        uploads: Upload paths by name: ``dwi``, ``adc``, ``flair``, ``gt`` (None: not given).
        model: One of :func:`model_choices`.
        method: The ensemble's rule, one of :data:`ENSEMBLE_METHODS`.
        threshold: Probability threshold of the mask (mean and STAPLE rules, single models).
        max_upload_mb: Largest upload accepted, in MB.

    Returns:
        The :class:`StrokeResult`.

    Raises:
        DemoInputError: No case and no uploads, an unknown case, model or method, a bad
            upload (named), a ground truth that is not a 0/1 mask.
        BrrrrError: The segmentation itself failed (its message names the file).
    """
    from brrrr.core import load_volume, save_volume
    from brrrr.models.segmentation import evaluate_case, label_lesions

    if not 0.0 <= float(threshold) <= 1.0:
        raise DemoInputError(f"threshold must be in [0, 1], got {threshold}")
    files = {k: v for k, v in (uploads or {}).items() if v}
    if files:
        inputs, truth, label = _uploaded(files, max_upload_mb)
    else:
        cases = sample_cases(sample_dir)
        if not case:
            raise DemoInputError("pick a sample case or upload DWI and ADC volumes")
        if case not in cases:
            raise DemoInputError(f"no sample case {case!r}; the sample has {sorted(cases)}")
        chosen = cases[case]
        inputs = {k: load_volume(p, dtype="float32") for k, p in chosen.inputs().items()}
        truth = None if chosen.mask is None else _binary(load_volume(chosen.mask))
        label = case
    segmenter = _segmenter(model, method)
    result = segmenter.segment(inputs, threshold=float(threshold))
    dwi = inputs["dwi"]
    mask = result.mask
    voxel_ml = float(np.prod(mask.spacing)) / 1000.0
    _, n_lesions = label_lesions(np.asarray(mask.data) > 0)
    summary: dict[str, Any] = {
        "model": segmenter.name,
        "input": label,
        "channels": sorted(inputs),
        "grid": list(mask.shape),
        "spacing_mm": [round(float(s), 4) for s in mask.spacing],
        "threshold": result.threshold,
        "rule": mask.metadata.get("rule", f"probability >= {result.threshold:g}"),
        "lesion_volume_ml": round(int(np.count_nonzero(mask.data)) * voxel_ml, 3),
        "lesion_count": int(n_lesions),
    }
    if result.members:
        names = [_member_name(m) for m in getattr(segmenter, "members", ())]
        summary["member_volumes_ml"] = {
            f"{i}: {name}": round(int(np.count_nonzero(m.mask.data)) * voxel_ml, 3)
            for i, (name, m) in enumerate(zip(names, result.members, strict=True))
        }
    metrics: dict[str, float | int] = {}
    on_grid = None
    if truth is not None:
        on_grid = _on_grid(truth, dwi)
        scores = evaluate_case(mask, on_grid.with_data(on_grid.data, affine=mask.affine))
        metrics = {
            k: (round(v, 4) if isinstance(v, float) and np.isfinite(v) else v)
            for k, v in scores.to_dict().items()
        }
    key = hashlib.sha256(
        repr((label, model, method, float(threshold), sorted(files.items()))).encode()
    ).hexdigest()[:10]
    out_dir = Path(work_dir) / _FOLDER
    out_dir.mkdir(parents=True, exist_ok=True)
    mask_path = save_volume(mask, out_dir / f"{_slug(label)}-{key}_mask.nii.gz")
    return StrokeResult(dwi, mask, on_grid, Path(mask_path), summary, metrics)


def _lesion_centre(mask: np.ndarray, affine: np.ndarray) -> tuple[float, float, float]:
    """World position of the largest lesion's voxel nearest its centroid (always inside it).

    The centroid of all lesions together may fall between them, where every slice through it
    misses the mask.
    """
    from scipy import ndimage

    labels, _ = ndimage.label(mask, structure=np.ones((3, 3, 3), dtype=bool))
    sizes = np.bincount(labels.ravel())[1:]
    voxels = np.argwhere(labels == int(np.argmax(sizes)) + 1)
    nearest = voxels[np.argmin(((voxels - voxels.mean(axis=0)) ** 2).sum(axis=1))]
    x, y, z = (affine @ np.array([*nearest, 1.0]))[:3]
    return float(x), float(y), float(z)


def stroke_view(result: StrokeResult, *, height: int = 520) -> View:
    """The DWI with the mask in red (and the ground truth in green), crosshair on the lesion."""
    from brrrr.demos.viewer import Layer, View

    layers = [Layer(result.dwi, name="DWI")]
    if result.ground_truth is not None:
        layers.append(
            Layer(result.ground_truth, colormap="green", opacity=0.45, threshold=0.5, name="truth")
        )
    layers.append(Layer(result.mask, colormap="red", opacity=0.85, threshold=0.5, name="mask"))
    crosshair = None
    shown = result.mask if np.any(result.mask.data) else result.ground_truth
    if shown is not None and np.any(shown.data):
        crosshair = _lesion_centre(np.asarray(shown.data) > 0, shown.affine)
    return View(layers, crosshair=crosshair, height=height, title="brrrr stroke segmentation")


def build_stroke_tab(context: DemoContext) -> None:
    """Add the Stroke segmentation tab's components and events to the ``gr.Blocks`` being built.

    Event ``segment``: (sample case, DWI, ADC, FLAIR, ground truth, model, ensemble method,
    threshold) → (viewer HTML, summary JSON, metrics JSON, mask NIfTI file).

    Raises:
        DemoSetupError: ``context.sample_dir / "stroke"`` holds no prepared sample.
        MissingDependencyError: gradio is not installed.
    """
    try:
        import gradio as gr
    except ImportError as exc:
        raise MissingDependencyError(
            f'the Stroke tab needs gradio ({exc}): pip install "brrrr-demos[apps]"'
        ) from None
    from brrrr.demos.viewer import viewer_html

    cases = sorted(sample_cases(context.sample_dir))
    # The tab opens on the first sample case already segmented by the shipped model (a few
    # seconds, once, when the app is built), so a visitor sees a mask straight away.
    first: StrokeResult | None = None
    if cases:
        try:
            first = segment_case(context.sample_dir, context.work_dir, case=cases[0], model=SHIPPED)
        except BrrrrError:
            first = None
    gr.Markdown(
        "### Stroke-lesion segmentation\n"
        "Segment an acute ischaemic lesion from DWI and ADC (FLAIR optional). The shipped "
        "SegResNet is **trained on synthetic data only** (it makes this demo work offline; it "
        "knows nothing of real scans): plug in real checkpoints with `$BRRRR_STROKE_MODELS`. "
        "Uploads win over the sample case; ISLES'22 metrics appear when a ground truth is known."
    )
    with gr.Row():
        with gr.Column(scale=1):
            case = gr.Dropdown(cases, value=cases[0] if cases else None, label="sample case")
            with gr.Accordion("or upload (NIfTI / MGZ)", open=False):
                dwi = gr.File(label="DWI", file_types=[".nii", ".gz", ".mgz"], type="filepath")
                adc = gr.File(label="ADC", file_types=[".nii", ".gz", ".mgz"], type="filepath")
                flair = gr.File(
                    label="FLAIR (optional)", file_types=[".nii", ".gz", ".mgz"], type="filepath"
                )
                truth = gr.File(
                    label="ground-truth mask (optional)",
                    file_types=[".nii", ".gz", ".mgz"],
                    type="filepath",
                )
            model = gr.Dropdown(model_choices(), value=SHIPPED, label="model")
            method = gr.Radio(list(ENSEMBLE_METHODS), value="mean", label="ensemble rule")
            threshold = gr.Slider(0.05, 0.95, value=0.5, step=0.05, label="threshold")
            run = gr.Button("Segment", variant="primary")
        with gr.Column(scale=2):
            viewer = gr.HTML(
                value=viewer_html(stroke_view(first)) if first else None, label="mask over DWI"
            )
            with gr.Row():
                summary = gr.JSON(value=first.summary if first else None, label="lesion")
                metrics = gr.JSON(value=first.metrics if first else None, label="ISLES'22 metrics")
            mask_file = gr.File(value=str(first.mask_path) if first else None, label="mask (NIfTI)")

    def on_segment(
        case_id: str | None,
        dwi_path: str | None,
        adc_path: str | None,
        flair_path: str | None,
        gt_path: str | None,
        choice: str,
        rule: str,
        level: float,
    ) -> tuple[str, dict[str, Any], dict[str, Any], str]:
        try:
            result = segment_case(
                context.sample_dir,
                context.work_dir,
                case=case_id,
                uploads={"dwi": dwi_path, "adc": adc_path, "flair": flair_path, "gt": gt_path},
                model=choice,
                method=rule,
                threshold=float(level),
                max_upload_mb=context.max_upload_mb,
            )
        except BrrrrError as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        shown: dict[str, Any] = result.metrics or {"note": "no ground truth given"}
        return viewer_html(stroke_view(result)), result.summary, shown, str(result.mask_path)

    run.click(
        on_segment,
        inputs=[case, dwi, adc, flair, truth, model, method, threshold],
        outputs=[viewer, summary, metrics, mask_file],
        api_name="segment",
        concurrency_limit=context.concurrency_limit,
    )
