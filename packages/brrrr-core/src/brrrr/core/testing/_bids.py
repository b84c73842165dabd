"""Synthetic BIDS datasets for tests (pybids ships none).

The tree looks like a real multi-session clinical dataset (the Aphasia Recovery
Cohort's layout): anatomical T1w/T2w/FLAIR with sidecars, repeated runs, a
functional run with ``events.tsv`` and an inherited top-level sidecar, DWI
with ``bval``/``bvec``, ``participants.tsv`` with phenotype columns, and lesion
masks under ``derivatives/lesion_masks`` matched by entities.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["DEFAULT_SCANS", "BidsScan", "write_bids_tree"]


@dataclass(frozen=True)
class BidsScan:
    """One kind of image to write for every subject/session.

    Attributes:
        datatype: BIDS datatype folder, e.g. ``"anat"``, ``"func"``, ``"dwi"``.
        suffix: BIDS suffix, e.g. ``"T1w"``, ``"bold"``, ``"dwi"``.
        entities: Extra entities in BIDS order, e.g. ``{"task": "naming", "run": "1"}``.
        volumes: Number of volumes (4th axis) for functional/diffusion images; 1 = 3D.
        sidecar: Keys of the JSON sidecar written next to the image.
    """

    datatype: str
    suffix: str
    entities: Mapping[str, str] = field(default_factory=dict)
    volumes: int = 1
    sidecar: Mapping[str, object] = field(default_factory=dict)


DEFAULT_SCANS: tuple[BidsScan, ...] = (
    BidsScan("anat", "T1w", sidecar={"RepetitionTime": 2.25, "EchoTime": 0.00296, "FlipAngle": 9}),
    BidsScan("anat", "T2w", {"run": "1"}, sidecar={"RepetitionTime": 3.2, "EchoTime": 0.565}),
    BidsScan("anat", "T2w", {"run": "2"}, sidecar={"RepetitionTime": 3.2, "EchoTime": 0.565}),
    BidsScan(
        "anat", "FLAIR", sidecar={"RepetitionTime": 5.0, "EchoTime": 0.387, "InversionTime": 1.8}
    ),
    BidsScan("func", "bold", {"task": "naming"}, volumes=4, sidecar={"EchoTime": 0.03}),
    BidsScan("dwi", "dwi", volumes=5, sidecar={"EchoTime": 0.08}),
)


def _name(subject: str, session: str | None, entities: Mapping[str, str], suffix: str) -> str:
    parts = [f"sub-{subject}"]
    if session is not None:
        parts.append(f"ses-{session}")
    parts += [f"{key}-{value}" for key, value in entities.items()]
    return "_".join(parts) + f"_{suffix}"


def write_bids_tree(
    root: str | os.PathLike[str],
    *,
    subjects: Sequence[str] = ("01", "02"),
    sessions: Sequence[str] = ("1", "2"),
    scans: Sequence[BidsScan] = DEFAULT_SCANS,
    lesion_masks: bool = True,
    shape: tuple[int, int, int] = (12, 14, 12),
    spacing_mm: float = 16.0,
    compress: bool = True,
    seed: int = 0,
    name: str = "brrrr synthetic dataset",
) -> Path:
    """Write a small, valid BIDS dataset and return its root.

    Args:
        root: Folder to create (may exist and be empty).
        subjects: Subject labels (without ``sub-``).
        sessions: Session labels (without ``ses-``); empty for a dataset without sessions.
        scans: What to write in each session (see :data:`DEFAULT_SCANS`).
        lesion_masks: Write ``derivatives/lesion_masks/…_desc-lesion_mask`` for each T1w.
        shape: Spatial shape of every image.
        spacing_mm: Voxel size of every image (large, so a head fits in a tiny grid).
        compress: ``.nii.gz`` (True) or ``.nii`` (False).
        seed: Makes every image different yet reproducible.
        name: ``Name`` in ``dataset_description.json``.

    Returns:
        The dataset root.
    """
    from brrrr.core import samples
    from brrrr.core.io import save_volume

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    ext = ".nii.gz" if compress else ".nii"
    _write_json(
        root / "dataset_description.json",
        {
            "Name": name,
            "BIDSVersion": "1.9.0",
            "DatasetType": "raw",
            "License": "CC0",
            "Authors": ["brrrr developers"],
            "HowToAcknowledge": "Cite the brrrr test suite.",
            "ReferencesAndLinks": ["https://example.org/brrrr-synthetic"],
            "DatasetDOI": "doi:10.0000/brrrr.synthetic",
        },
    )
    (root / "README").write_text(f"{name}: synthetic data written by brrrr.core.testing.\n")
    rng = np.random.default_rng(seed)
    with (root / "participants.tsv").open("w") as handle:
        handle.write("participant_id\tage\tsex\twab_aq\n")
        for subject in subjects:
            handle.write(
                f"sub-{subject}\t{int(rng.integers(35, 80))}\t{rng.choice(['M', 'F'])}\t{rng.uniform(10, 95):.1f}\n"
            )
    _write_json(
        root / "participants.json",
        {
            "age": {"Description": "age at first session", "Units": "years"},
            "wab_aq": {"Description": "Western Aphasia Battery aphasia quotient"},
        },
    )
    # Inherited sidecar: applies to every bold run of that task unless overridden.
    for scan in scans:
        if scan.suffix == "bold" and "task" in scan.entities:
            _write_json(
                root / f"task-{scan.entities['task']}_bold.json",
                {
                    "RepetitionTime": 2.0,
                    "TaskName": scan.entities["task"],
                },
            )
    session_labels: Sequence[str | None] = list(sessions) if sessions else [None]
    counter = 0
    for subject in subjects:
        for session in session_labels:
            folder = root / f"sub-{subject}" / ("" if session is None else f"ses-{session}")
            for scan in scans:
                counter += 1
                out = folder / scan.datatype
                out.mkdir(parents=True, exist_ok=True)
                stem = _name(subject, session, scan.entities, scan.suffix)
                image, lesion = samples.lesion_phantom(
                    shape=shape, spacing=spacing_mm, seed=seed + counter
                )
                if scan.volumes > 1:
                    frames = [
                        samples.phantom(
                            shape=shape, spacing=spacing_mm, seed=seed + counter * 100 + t
                        ).data
                        for t in range(scan.volumes)
                    ]
                    image = image.with_data(np.stack(frames))
                save_volume(image, out / f"{stem}{ext}")
                if scan.sidecar:
                    _write_json(out / f"{stem}.json", dict(scan.sidecar))
                if scan.suffix == "bold":
                    _write_events(out / f"{stem.removesuffix('_bold')}_events.tsv", rng)
                if scan.suffix == "dwi":
                    _write_gradients(out / stem, scan.volumes, rng)
                if lesion_masks and scan.suffix == "T1w":
                    mask_dir = (
                        root / "derivatives" / "lesion_masks" / folder.relative_to(root) / "anat"
                    )
                    mask_dir.mkdir(parents=True, exist_ok=True)
                    mask_stem = _name(subject, session, {}, "mask").replace(
                        "_mask", "_desc-lesion_mask"
                    )
                    save_volume(lesion, mask_dir / f"{mask_stem}{ext}")
    if lesion_masks:
        _write_json(
            root / "derivatives" / "lesion_masks" / "dataset_description.json",
            {
                "Name": "lesion masks",
                "BIDSVersion": "1.9.0",
                "DatasetType": "derivative",
                "GeneratedBy": [{"Name": "manual tracing"}],
            },
        )
    return root


def _write_json(path: Path, payload: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")


def _write_events(path: Path, rng: np.random.Generator) -> None:
    with path.open("w") as handle:
        handle.write("onset\tduration\ttrial_type\tresponse_time\n")
        for i in range(3):
            handle.write(
                f"{i * 2.0:.1f}\t1.0\t{'picture' if i % 2 == 0 else 'rest'}\t{rng.uniform(0.4, 1.2):.3f}\n"
            )


def _write_gradients(stem: Path, volumes: int, rng: np.random.Generator) -> None:
    bvals = [0] + [1000] * (volumes - 1)
    vectors = rng.normal(size=(3, volumes))
    vectors /= np.linalg.norm(vectors, axis=0, keepdims=True)
    vectors[:, 0] = 0.0
    stem.with_name(stem.name + ".bval").write_text(" ".join(map(str, bvals)) + "\n")
    stem.with_name(stem.name + ".bvec").write_text(
        "\n".join(" ".join(f"{v:.6f}" for v in row) for row in vectors) + "\n"
    )
