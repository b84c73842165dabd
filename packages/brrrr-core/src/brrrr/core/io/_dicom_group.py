"""Split the images of one DICOM series into volumes: 3-D, or 4-D and multi-echo.

A series is one 3D volume when no two images share a slice position. Otherwise
(fMRI time series, DWI, multi-echo, field maps, cardiac phases…) the images at each
position are told apart by their *identifiers* (:data:`IDENTIFIERS`: echo number and
time, inversion time, flip angle, repetition time, temporal position, trigger time,
acquisition number, b-value, gradient direction, image type, complex component,
stack). A grouping is accepted when it gives complete volumes: every group holds
exactly one image at each slice position. Tried in turn:

1. all identifiers that vary in the series together;
2. each of them alone (in the order above);
3. all but one of them;
4. instance order: when nothing else tells the images apart, every position holds
   the same number of images, and their ``InstanceNumber`` (or acquisition time)
   differ, the n-th image at each position goes to volume n (GE time series).

Volumes are ordered by echo, inversion time, flip angle, repetition time, temporal
position, trigger time and acquisition number (those that tell them apart), then by
acquisition order (``InstanceNumber``, then time), so DWI volumes keep the order they
were acquired in. Every volume must have the same geometry. A series that no rule
splits is refused with what the images at one position share and what they do not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from brrrr.core.errors import DicomSeriesError
from brrrr.core.io._dicom_frames import IDENTIFIERS, Frame, Header
from brrrr.core.io._dicom_stack import DUPLICATE_MM, Stack, check_uniform, stack_frames

__all__ = ["Plan", "echo_numbers", "plan_volumes", "select_echo"]

# Identifiers that order volumes before acquisition order does.
_ORDERING = (
    "EchoNumbers",
    "EchoTime",
    "InversionTime",
    "FlipAngle",
    "RepetitionTime",
    "TemporalPosition",
    "TriggerTime",
    "AcquisitionNumber",
)


@dataclass
class Plan:
    """Which frames form which volume, in which order, and the common geometry.

    Attributes:
        volumes: Per volume, frame indices in slice order (``k``).
        stack: The geometry of the first volume (all volumes share it).
        keys: The identifiers that tell the volumes apart (``("InstanceNumber",)`` for
            instance order; empty for one volume).
        values: Per volume, the identifier values all its frames share.
    """

    volumes: list[list[int]]
    stack: Stack
    keys: tuple[str, ...]
    values: list[dict[str, Any]]


def echo_numbers(frames: Sequence[Frame]) -> list[int] | None:
    """Each frame's echo: ``EchoNumbers``, else the rank of its echo time (1-based)."""
    if frames and all("EchoNumbers" in f.keys for f in frames):
        return [int(f.keys["EchoNumbers"]) for f in frames]
    times = sorted({f.keys["EchoTime"] for f in frames if "EchoTime" in f.keys})
    if not times or len(times) < 2 or any("EchoTime" not in f.keys for f in frames):
        return None
    return [times.index(f.keys["EchoTime"]) + 1 for f in frames]


def select_echo(frames: list[Frame], echo: int | None, where: str) -> list[Frame]:
    """The frames of one echo (all frames when ``echo`` is ``None``).

    Raises:
        DicomSeriesError: The series has no such echo.
    """
    if echo is None:
        return frames
    numbers = echo_numbers(frames)
    if numbers is None:
        if echo == 1:
            return frames
        raise DicomSeriesError(
            f"echo={echo} asked for, but this series has one echo (no EchoNumbers or echo "
            "times that differ)",
            path=where,
        )
    kept = [f for f, n in zip(frames, numbers, strict=True) if n == echo]
    if not kept:
        available = sorted(set(numbers))
        times = sorted({float(f.keys["EchoTime"]) for f in frames if "EchoTime" in f.keys})
        raise DicomSeriesError(
            f"no echo {echo} in this series: it has echoes {available} "
            f"(EchoTime {', '.join(f'{t:g}' for t in times)} ms)",
            path=where,
        )
    return kept


def _clusters(along: np.ndarray, tol: float) -> np.ndarray:
    """Cluster id of each position along the normal (0 = lowest)."""
    order = np.argsort(along, kind="stable")
    gaps = np.diff(along[order])
    positive = gaps[gaps > DUPLICATE_MM]
    typical = float(np.median(positive)) if positive.size else 0.0
    same = gaps <= max(DUPLICATE_MM, tol * typical)
    ids = np.empty(len(along), dtype=np.int64)
    ids[order] = np.concatenate([[0], np.cumsum(~same)])
    return ids


def _complete(groups: dict[Any, list[int]], cluster: np.ndarray, n_positions: int) -> bool:
    full = list(range(n_positions))
    return len(groups) > 1 and all(sorted(cluster[g].tolist()) == full for g in groups.values())


def _group_by(frames: Sequence[Frame], key: tuple[str, ...]) -> dict[Any, list[int]]:
    groups: dict[Any, list[int]] = {}
    for i, f in enumerate(frames):
        groups.setdefault(tuple(f.keys.get(name) for name in key), []).append(i)
    return groups


def _by_instance(
    frames: Sequence[Frame], cluster: np.ndarray, n_positions: int
) -> dict[Any, list[int]] | None:
    members: list[list[int]] = [[] for _ in range(n_positions)]
    for i, c in enumerate(cluster):
        members[c].append(i)
    counts = {len(m) for m in members}
    if len(counts) != 1:
        return None
    groups: dict[Any, list[int]] = {}
    for m in members:
        ranks = sorted(m, key=lambda i: (frames[i].instance, frames[i].time))
        marks = [(frames[i].instance, frames[i].time) for i in ranks]
        if len(set(marks)) != len(marks) or any(a == (np.inf, "") for a in marks):
            return None
        for v, i in enumerate(ranks):
            groups.setdefault((v,), []).append(i)
    return groups


def _refuse(frames: Sequence[Frame], cluster: np.ndarray, along: np.ndarray, where: str) -> None:
    counts = np.bincount(cluster)
    c = int(np.flatnonzero(counts > 1)[0])
    same = [frames[int(i)] for i in np.flatnonzero(cluster == c)]
    names = ", ".join(f.label for f in same[:6]) + (" …" if len(same) > 6 else "")
    at = float(np.mean(along[cluster == c]))
    head = (
        f"{len(same)} images share a slice position ({at:.4f} mm along the slice normal), e.g. "
        f"{names}"
    )
    uids = [f.sop_uid for f in same]
    if len(set(uids)) < len(uids):
        raise DicomSeriesError(
            f"{head}; they have the same SOPInstanceUID: the same image is there twice, so a "
            "file was copied twice. Remove the copies",
            path=where,
        )
    differing = [name for name in IDENTIFIERS if len({f.keys.get(name) for f in same}) > 1]
    spread = f"{counts.min()} to {counts.max()} images per position over {len(counts)} positions"
    if differing:
        detail = ", ".join(
            f"{name} ({', '.join(sorted({_show(f.keys.get(name)) for f in same}))})"
            for name in differing
        )
        why = (
            f"they differ in {detail}, but no grouping by these attributes gives complete "
            f"volumes ({spread}): images are missing, or extra ones were added"
        )
    elif len({f.instance for f in same}) < len(same):
        why = (
            "they have different SOPInstanceUIDs but nothing else tells them apart, not even "
            "InstanceNumber: the folder probably holds two exports of the same images"
        )
    else:
        why = (
            f"nothing but InstanceNumber tells them apart, and the positions hold different "
            f"numbers of images ({spread}): a slice was acquired or exported twice, or images "
            "are missing"
        )
    raise DicomSeriesError(
        f"{head}; {why}. Split the series (e.g. with dcm2niix), select one echo (echo=), or "
        "remove the extra files",
        path=where,
    )


def _show(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _sort_key(frames: Sequence[Frame], group: list[int], key: tuple[str, ...]) -> tuple:
    def part(value: Any) -> tuple[bool, Any]:
        return (value is None, value if value is not None else 0)

    first = frames[group[0]].keys
    ordering = [part(first.get(name)) for name in _ORDERING if name in key]
    acquired = min((frames[i].instance, frames[i].time) for i in group)
    rest = [_show(first.get(name)) for name in key if name not in _ORDERING]
    return (*ordering, acquired, *rest)


def _shared_values(frames: Sequence[Frame], group: list[int]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in IDENTIFIERS:
        seen = {frames[i].keys.get(name) for i in group}
        if len(seen) == 1 and None not in seen:
            values[name] = seen.pop()
    return values


def plan_volumes(
    frames: Sequence[Frame], headers: Sequence[Header], where: str, tol: float
) -> Plan:
    """Group a series' frames into volumes and check their geometry.

    Raises:
        DicomSeriesError: Images that differ in size, orientation or spacing; a series
            no rule splits into complete volumes; volumes with different geometry;
            missing or unevenly spaced slices.
    """
    normal = check_uniform(frames, headers, where)
    along = np.array([f.position for f in frames]) @ normal
    cluster = _clusters(along, tol)
    n_positions = int(cluster.max()) + 1
    key: tuple[str, ...] = ()
    if n_positions == len(frames):
        groups = {(): list(range(len(frames)))}
    else:
        varying = [n for n in IDENTIFIERS if len({f.keys.get(n) for f in frames}) > 1]
        candidates = [tuple(varying), *((n,) for n in varying)]
        if len(varying) > 2:
            candidates += [tuple(v for v in varying if v != n) for n in reversed(varying)]
        found = None
        for candidate in dict.fromkeys(c for c in candidates if c):
            groups = _group_by(frames, candidate)
            if _complete(groups, cluster, n_positions):
                found, key = groups, candidate
                break
        if found is None:
            found = _by_instance(frames, cluster, n_positions)
            key = ("InstanceNumber",)
        if found is None:
            _refuse(frames, cluster, along, where)
        assert found is not None
        groups = found
    ordered = sorted(groups.values(), key=lambda g: _sort_key(frames, g, key))
    volumes, stack = [], None
    for v, group in enumerate(ordered):
        this = stack_frames([frames[i] for i in group], headers, where, tol)
        volumes.append([group[i] for i in this.order])
        if stack is None:
            stack = this
        elif not np.allclose(this.affine_lps, stack.affine_lps, atol=max(1e-3, tol * 1e-1)):
            raise DicomSeriesError(
                f"the series' volumes differ in geometry: volume 1 (e.g. "
                f"{frames[volumes[0][0]].label}) and volume {v + 1} (e.g. "
                f"{frames[volumes[v][0]].label}) have different slice positions or steps",
                path=where,
            )
    assert stack is not None
    values = [_shared_values(frames, g) for g in volumes]
    return Plan(volumes, stack, key, values)
