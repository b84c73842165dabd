"""The explorer's built-in sample: a small clinical-looking BIDS tree and its ``to_hf`` output.

Three subjects (the third seen once, the others before and after treatment), each session with
a T1w and a FLAIR under ``anat`` and a lesion mask under ``derivatives/lesion_masks``, drawn
from :func:`brrrr.core.samples.lesion_phantom` at 4 mm so the whole sample stays near 2 MB. The
headers differ the way a real dataset's do, so the explorer's filters have something to find:
the FLAIRs have 5 mm slices, one subject's T1w is stored radiologically (``LAS``), masks are
``uint8``. Sidecars follow BIDS inheritance (scanner fields in a root ``T1w.json`` /
``FLAIR.json``, sequence fields next to each image).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "BIDS_NAME",
    "COMPLETE_MARKER",
    "HF_NAME",
    "SAMPLE_FOLDER",
    "is_complete",
    "write_sample",
]

SAMPLE_FOLDER = "explorer"
BIDS_NAME = "bids"
HF_NAME = "bids-hf"
COMPLETE_MARKER = ".complete.json"
# Bumped when the sample changes, so an older complete sample is rebuilt.
_SAMPLE_VERSION = 1

_SCANNER = {
    "Manufacturer": "Siemens",
    "ManufacturersModelName": "Prisma_fit",
    "MagneticFieldStrength": 3,
    "ReceiveCoilName": "Head_32",
    "SoftwareVersions": "syngo MR XA30",
    "InstitutionName": "brrrr synthetic stroke clinic",
}
_T1W = {
    "SeriesDescription": "T1_MPRAGE_sag",
    "PulseSequenceType": "MPRAGE",
    "RepetitionTime": 2.3,
    "EchoTime": 0.00226,
    "InversionTime": 0.9,
    "FlipAngle": 8,
    "PhaseEncodingDirection": "j-",
    "SliceThickness": 4.0,
}
_FLAIR = {
    "SeriesDescription": "t2_flair_tra",
    "PulseSequenceType": "TSE",
    "RepetitionTime": 9.0,
    "EchoTime": 0.081,
    "InversionTime": 2.5,
    "FlipAngle": 150,
    "PhaseEncodingDirection": "j",
    "SliceThickness": 5.0,
}


@dataclass(frozen=True)
class _Session:
    subject: str
    session: str
    t1_axcodes: str
    days_after_stroke: int


_SESSIONS = (
    _Session("01", "acute", "RAS", 2),
    _Session("01", "followup", "RAS", 92),
    _Session("02", "acute", "LAS", 1),
    _Session("02", "followup", "LAS", 88),
    _Session("03", "acute", "RAS", 3),
)
_PARTICIPANTS = (("01", 67, "M", "left"), ("02", 54, "F", "left"), ("03", 72, "F", "right"))
_SHAPE = (48, 57, 48)  # the phantom's 192 x 228 x 192 mm field of view at 4 mm
_SPACING_MM = 4.0
_FLAIR_SPACING_MM = (4.0, 4.0, 5.0)


def is_complete(folder: Path) -> bool:
    """Whether ``folder`` holds a finished sample of the current version."""
    try:
        stamp = json.loads((folder / COMPLETE_MARKER).read_text())
    except (OSError, ValueError):
        return False
    return (
        isinstance(stamp, dict)
        and stamp.get("version") == _SAMPLE_VERSION
        and (folder / BIDS_NAME / "dataset_description.json").is_file()
        and (folder / HF_NAME / "manifest.json").is_file()
    )


def write_sample(sample_dir: Path) -> Path:
    """Write ``sample_dir/explorer/{bids,bids-hf}`` unless a complete one is there.

    The sample is built in a temporary folder next to it and renamed into place, so the
    expected folder either holds a complete sample or does not exist.

    Returns:
        ``sample_dir / "explorer"``.
    """
    from brrrr.ingest.shards import to_hf

    sample_dir = Path(sample_dir)
    target = sample_dir / SAMPLE_FOLDER
    if is_complete(target):
        return target
    sample_dir.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{SAMPLE_FOLDER}-", dir=sample_dir))
    try:
        _write_bids(building / BIDS_NAME)
        to_hf(building / BIDS_NAME, building / HF_NAME, progress=False)
        (building / COMPLETE_MARKER).write_text(json.dumps({"version": _SAMPLE_VERSION}) + "\n")
        if target.exists():
            if is_complete(target):  # another process finished first
                return target
            shutil.rmtree(target)
        building.rename(target)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        if is_complete(target):
            return target
        raise
    return target


def _write_json(path: Path, payload: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")


def _write_bids(root: Path) -> None:
    from brrrr.core import samples
    from brrrr.core.io import save_volume

    root.mkdir(parents=True)
    _write_json(
        root / "dataset_description.json",
        {
            "Name": "brrrr explorer sample: synthetic stroke follow-up",
            "BIDSVersion": "1.9.0",
            "DatasetType": "raw",
            "License": "CC0",
            "Authors": ["neuroimaging-go-brrrr developers"],
            "HowToAcknowledge": "Synthetic data written by brrrr.demos; nothing to cite.",
        },
    )
    (root / "README").write_text(
        "Synthetic stroke follow-up written by brrrr.demos from brrrr.core.samples phantoms.\n"
    )
    lines = ["participant_id\tage\tsex\tlesion_side"]
    lines += [f"sub-{s}\t{age}\t{sex}\t{side}" for s, age, sex, side in _PARTICIPANTS]
    (root / "participants.tsv").write_text("\n".join(lines) + "\n")
    _write_json(
        root / "participants.json",
        {
            "age": {"Description": "age at stroke onset", "Units": "years"},
            "sex": {"Description": "sex", "Levels": {"M": "male", "F": "female"}},
            "lesion_side": {"Description": "hemisphere of the infarct"},
        },
    )
    # Inherited by every T1w / FLAIR of the dataset (the BIDS inheritance principle).
    _write_json(root / "T1w.json", _SCANNER)
    _write_json(root / "FLAIR.json", _SCANNER)
    masks = root / "derivatives" / "lesion_masks"
    _write_json(
        masks / "dataset_description.json",
        {
            "Name": "lesion masks",
            "BIDSVersion": "1.9.0",
            "DatasetType": "derivative",
            "GeneratedBy": [{"Name": "manual tracing", "Description": "traced on the T1w"}],
        },
    )
    for seed, visit in enumerate(_SESSIONS, start=1):
        stem = f"sub-{visit.subject}_ses-{visit.session}"
        anat = root / f"sub-{visit.subject}" / f"ses-{visit.session}" / "anat"
        t1, lesion = samples.lesion_phantom(
            shape=_SHAPE, spacing=_SPACING_MM, axcodes=visit.t1_axcodes, seed=seed
        )
        anat.mkdir(parents=True)
        save_volume(t1, anat / f"{stem}_T1w.nii.gz")
        acquired = {"AcquisitionDateTime": f"2024-01-{visit.days_after_stroke % 28 + 1:02d}T09:30"}
        _write_json(anat / f"{stem}_T1w.json", _T1W | acquired)
        flair_shape = tuple(
            round(n * _SPACING_MM / s) for n, s in zip(_SHAPE, _FLAIR_SPACING_MM, strict=True)
        )
        flair = samples.phantom(
            shape=flair_shape, spacing=_FLAIR_SPACING_MM, lesion=True, seed=100 + seed
        )
        save_volume(flair, anat / f"{stem}_FLAIR.nii.gz")
        _write_json(anat / f"{stem}_FLAIR.json", _FLAIR | acquired)
        mask_dir = masks / f"sub-{visit.subject}" / f"ses-{visit.session}" / "anat"
        mask_dir.mkdir(parents=True)
        save_volume(lesion, mask_dir / f"{stem}_desc-lesion_mask.nii.gz")
        _write_json(
            mask_dir / f"{stem}_desc-lesion_mask.json",
            {"Type": "Lesion", "Sources": [f"bids::{anat.relative_to(root)}/{stem}_T1w.nii.gz"]},
        )
