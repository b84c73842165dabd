"""Rows of an indexed BIDS dataset, and their ``datasets.Features`` schema.

* ``level="file"``: one row per image — the BIDS entities as columns (see
  :func:`entity_column` for their names), the image
  as :class:`datasets.Nifti`, the sidecar after BIDS inheritance (JSON, plus
  typed columns for common fields), ``events.tsv`` rows (JSON), ``bval``/``bvec``
  aligned with each DWI, the subject's ``participants.tsv`` row (``phenotype``),
  and header columns (shape, spacing, affine, axcodes, dtype, file bytes) read
  without decoding voxels, so filtering never decodes an image.
* ``level="session"`` / ``"subject"``: one row per session / subject; each
  modality (``T1w``, ``bold``, derivatives such as ``lesion_mask``) is a list
  of images (``{modality}``) plus a list of per-file facts
  (``{modality}_files``), multi-run scans in run order, none dropped. The
  per-file ``entities`` cell is JSON keyed by pybids' entity names, so it can be
  passed back to ``BIDSLayout.get(**entities)``.

Every entity pybids parses (its ``bids`` and ``derivatives`` configs) has a
column of its own, named as pybids names the entity (``acquisition`` for
``acq-``, ``ceagent`` for ``ce-``, ``reconstruction`` for ``rec-``,
``direction`` for ``dir-``, ``segmentation`` for ``seg-``…), with one
exception: ``mod-`` is the column ``mod``, because pybids' name for it,
``modality``, is this package's modality key (``T1w``, ``lesion_mask``).

Files that fail to load are never dropped silently: ``on_error="raise"``
stops at the first one; ``on_error="skip"`` leaves them out, warns, and lists
them (path and reason) in a :class:`LoadReport`.

Example:
    >>> from brrrr.ingest.index import index_bids
    >>> from brrrr.ingest.rows import bids_features, iter_rows
    >>> index = index_bids("ds004884")  # doctest: +SKIP
    >>> features = bids_features(index, level="session")  # doctest: +SKIP
    >>> first = next(iter_rows(index, level="session"))  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import json
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from brrrr.core.io.header import VolumeHeader
from brrrr.ingest.errors import BidsError
from brrrr.ingest.features import NIFTI, list_of, value
from brrrr.ingest.header import Check, read_header
from brrrr.ingest.index import NA_VALUES, BidsIndex, BidsItem

if TYPE_CHECKING:
    import datasets

__all__ = [
    "COMMON_SIDECAR_FIELDS",
    "ENTITY_COLUMNS",
    "Check",
    "Level",
    "LoadReport",
    "OnError",
    "SkippedFile",
    "bids_features",
    "bids_schema",
    "entity_column",
    "iter_rows",
    "streaming_rows",
]

Level = Literal["file", "session", "subject"]
OnError = Literal["raise", "skip"]

#: Sidecar fields that also get a typed column of their own (``None`` when absent).
COMMON_SIDECAR_FIELDS: dict[str, Literal["float64", "string"]] = {
    "RepetitionTime": "float64",
    "EchoTime": "float64",
    "FlipAngle": "float64",
    "InversionTime": "float64",
    "SliceThickness": "float64",
    "MagneticFieldStrength": "float64",
    "EffectiveEchoSpacing": "float64",
    "TotalReadoutTime": "float64",
    "PhaseEncodingDirection": "string",
    "Manufacturer": "string",
    "ManufacturersModelName": "string",
    "TaskName": "string",
}

#: Entities whose column is not their pybids name, because another column of the file
#: rows has that name: pybids calls ``mod-`` ``modality``, here the modality key.
ENTITY_COLUMNS: dict[str, str] = {"modality": "mod"}


def entity_column(entity: str) -> str:
    """The column of a file row that holds the pybids entity ``entity``.

    Example:
        >>> entity_column("acquisition"), entity_column("modality")
        ('acquisition', 'mod')
    """
    return ENTITY_COLUMNS.get(entity, entity)


@dataclass(frozen=True)
class SkippedFile:
    """A file left out because it could not be loaded.

    Attributes:
        path: The file, relative to the dataset root.
        reason: What is wrong with it.
    """

    path: str
    reason: str


@dataclass
class LoadReport:
    """Files left out by ``on_error="skip"`` (pass one in to receive them)."""

    skipped: list[SkippedFile] = field(default_factory=list)

    def add(self, path: str, reason: str) -> None:
        """Record one skipped file."""
        self.skipped.append(SkippedFile(path, reason))


def _scalar(cell: str | None) -> Any:
    if cell is None or cell.strip() in NA_VALUES:
        return None
    for convert in (int, float):
        try:
            return convert(cell)
        except ValueError:
            continue
    return cell


# --- features ---------------------------------------------------------------------------------


def _file_fields() -> dict[str, Any]:
    return {
        "sidecar": value("string"),
        "events": value("string"),
        "bval": list_of(value("float64")),
        "bvec": list_of(list_of(value("float64"))),
        "shape": list_of(value("int32")),
        "spacing": list_of(value("float32")),
        "affine": list_of(value("float64"), length=16),
        "axcodes": value("string"),
        "dtype": value("string"),
        "file_bytes": value("int64"),
    }


def bids_schema(index: BidsIndex, *, level: Level = "file") -> dict[str, Any]:
    """The schema of :func:`bids_features` as plain data, without importing ``datasets``.

    Args:
        index: From :func:`index_bids`.
        level: ``"file"``, ``"session"`` or ``"subject"``.

    Returns:
        What ``bids_features(index, level=level).to_dict()`` returns (see
        :mod:`brrrr.ingest.features`).
    """
    phenotype = {c: value(t) for c, t in index.phenotype_types.items()}
    if level == "file":
        columns: dict[str, Any] = {"path": value("string")}
        columns |= {entity_column(name): value("string") for name in index.entity_names}
        columns |= {"pipeline": value("string"), "modality": value("string"), "image": NIFTI}
        columns |= {name: value(kind) for name, kind in COMMON_SIDECAR_FIELDS.items()}
        columns |= _file_fields()
    else:
        columns = {"subject": value("string")}
        columns |= (
            {"session": value("string")}
            if level == "session"
            else {"sessions": list_of(value("string"))}
        )
        per_file = {
            "path": value("string"),
            "session": value("string"),
            "entities": value("string"),
        }
        per_file |= {"pipeline": value("string")} | _file_fields()
        for modality in index.modalities:
            columns[modality] = list_of(NIFTI)
            columns[f"{modality}_files"] = list_of(per_file)
    if phenotype:
        columns["phenotype"] = phenotype
    return columns


def bids_features(index: BidsIndex, *, level: Level = "file") -> datasets.Features:
    """The schema of the rows :func:`iter_rows` yields for ``index`` at ``level``.

    Args:
        index: From :func:`index_bids`.
        level: ``"file"``, ``"session"`` or ``"subject"``.

    Returns:
        ``datasets.Features``; image columns are ``Nifti()`` or ``List(Nifti())``.
    """
    from datasets import Features

    return Features.from_dict(bids_schema(index, level=level))


# --- rows -------------------------------------------------------------------------------------


def _read_events(path: str) -> str:
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = [
                {k: _scalar(v) for k, v in row.items() if k}
                for row in csv.DictReader(handle, delimiter="\t")
            ]
    except (OSError, csv.Error, UnicodeDecodeError) as exc:
        raise BidsError(f"cannot read events: {exc}", path=path) from None
    return json.dumps(rows)


def _read_gradients(item: BidsItem, header: VolumeHeader) -> tuple[list[float], list[list[float]]]:
    volumes = header.shape[3] if len(header.shape) > 3 else 1
    if item.bval_path is None or item.bvec_path is None:
        raise BidsError("DWI image without an applicable .bval and .bvec", path=item.path)
    try:
        bval = [float(v) for v in Path(item.bval_path).read_text().split()]
        bvec = [
            [float(v) for v in line.split()]
            for line in Path(item.bvec_path).read_text().splitlines()
            if line.strip()
        ]
    except (OSError, ValueError) as exc:
        raise BidsError(f"cannot read the gradients: {exc}", path=item.bval_path) from None
    if len(bval) != volumes:
        raise BidsError(
            f"{len(bval)} b-values for {volumes} volumes in {Path(item.path).name}",
            path=item.bval_path,
        )
    if len(bvec) != 3 or any(len(row) != volumes for row in bvec):
        raise BidsError(
            f"b-vectors must be 3 rows of {volumes} values for {Path(item.path).name}",
            path=item.bvec_path,
        )
    return bval, bvec


def _file_facts(item: BidsItem, *, check: Check) -> dict[str, Any]:
    header = read_header(item.path, check=check)
    bval, bvec = (
        _read_gradients(item, header) if item.entities.get("suffix") == "dwi" else (None, None)
    )
    return {
        "sidecar": json.dumps(item.sidecar, sort_keys=True),
        "events": None if item.events_path is None else _read_events(item.events_path),
        "bval": bval,
        "bvec": bvec,
        "shape": list(header.shape),
        "spacing": list(header.spacing),
        "affine": [float(v) for v in header.affine.ravel()],
        "axcodes": header.axcodes,
        "dtype": header.dtype,
        "file_bytes": header.file_bytes,
    }


def _common(sidecar: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, kind in COMMON_SIDECAR_FIELDS.items():
        found = sidecar.get(name)
        if kind == "float64":
            number = isinstance(found, int | float) and not isinstance(found, bool)
            out[name] = float(found) if number and found is not None else None
        else:
            out[name] = found if isinstance(found, str) else None
    return out


@dataclass(frozen=True)
class _RowBuilder:
    """Turns groups of items into rows; plain data so streaming workers can pickle it."""

    entity_names: tuple[str, ...]
    modalities: tuple[str, ...]
    phenotype: dict[str, dict[str, Any]]
    phenotype_columns: tuple[str, ...]
    level: Level
    check: Check
    on_error: OnError

    def rows(
        self, units: Sequence[Sequence[BidsItem]], report: LoadReport | None
    ) -> Iterator[dict[str, Any]]:
        for unit in units:
            facts = []
            for item in unit:
                try:
                    facts.append((item, _file_facts(item, check=self.check)))
                except BidsError as exc:
                    if self.on_error == "raise":
                        raise
                    if report is not None:
                        report.add(item.relpath, exc.message)
                    warnings.warn(
                        f"skipped {item.relpath}: {exc.message}", RuntimeWarning, stacklevel=2
                    )
            if not facts:
                continue
            yield self._file_row(*facts[0]) if self.level == "file" else self._group_row(facts)

    def _phenotype(self, subject: str) -> dict[str, Any]:
        if not self.phenotype_columns:
            return {}
        values = self.phenotype.get(subject, {})
        return {"phenotype": {c: values.get(c) for c in self.phenotype_columns}}

    def _file_row(self, item: BidsItem, facts: dict[str, Any]) -> dict[str, Any]:
        row: dict[str, Any] = {"path": item.relpath}
        row |= {entity_column(name): item.entities.get(name) for name in self.entity_names}
        row |= {"pipeline": item.pipeline, "modality": item.modality}
        row["image"] = {"path": item.path, "bytes": None}
        row |= _common(item.sidecar) | facts
        return row | self._phenotype(item.entities["subject"])

    def _group_row(self, facts: list[tuple[BidsItem, dict[str, Any]]]) -> dict[str, Any]:
        first = facts[0][0].entities
        row: dict[str, Any] = {"subject": first["subject"]}
        if self.level == "session":
            row["session"] = first.get("session")
        else:
            row["sessions"] = list(
                dict.fromkeys(it.entities["session"] for it, _ in facts if "session" in it.entities)
            )
        for modality in self.modalities:
            row[modality] = []
            row[f"{modality}_files"] = []
        for item, file_facts in facts:
            row[item.modality].append({"path": item.path, "bytes": None})
            row[f"{item.modality}_files"].append(
                {
                    "path": item.relpath,
                    "session": item.entities.get("session"),
                    "entities": json.dumps(item.entities, sort_keys=True),
                    "pipeline": item.pipeline,
                }
                | file_facts
            )
        return row | self._phenotype(first["subject"])


def _units(index: BidsIndex, level: Level) -> list[list[BidsItem]]:
    if level == "file":
        return [[item] for item in index.items]
    groups: dict[tuple[str, ...], list[BidsItem]] = {}
    for item in index.items:
        key: tuple[str, ...] = (item.entities.get("subject", ""),)
        if level == "session":
            key += (item.entities.get("session", ""),)
        groups.setdefault(key, []).append(item)
    if level == "subject":
        # Within a subject: session order first, then the file order of the index.
        for members in groups.values():
            members.sort(key=lambda it: it.entities.get("session", ""))
    return list(groups.values())


def _builder(index: BidsIndex, level: Level, check: Check, on_error: OnError) -> _RowBuilder:
    if level not in ("file", "session", "subject"):
        raise ValueError(f"level must be 'file', 'session' or 'subject', got {level!r}")
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    if check not in ("header", "size", "full"):
        raise ValueError(f"check must be 'header', 'size' or 'full', got {check!r}")
    return _RowBuilder(
        entity_names=index.entity_names,
        modalities=index.modalities,
        phenotype=index.phenotype,
        phenotype_columns=tuple(index.phenotype_types),
        level=level,
        check=check,
        on_error=on_error,
    )


def iter_rows(
    index: BidsIndex,
    *,
    level: Level = "file",
    on_error: OnError = "raise",
    check: Check = "header",
    report: LoadReport | None = None,
    progress: bool = True,
) -> Iterator[dict[str, Any]]:
    """Rows of ``index`` at ``level``, reading headers, sidecars, events and gradients.

    Image cells are ``{"path": absolute path, "bytes": None}``: nothing is decoded.

    Args:
        index: From :func:`index_bids`.
        level: ``"file"``, ``"session"`` or ``"subject"``.
        on_error: ``"raise"`` stops at the first file that fails to load;
            ``"skip"`` leaves it out, warns and records it in ``report``.
        check: ``"header"`` (fast), ``"size"`` (also that every voxel byte is stored) or
            ``"full"`` (also decode voxels to find corrupt data); see
            :data:`brrrr.ingest.header.Check`.
        report: Receives the skipped files.
        progress: Show a progress bar.

    Yields:
        One dict per row, matching :func:`bids_features`.

    Raises:
        BidsError: A file fails to load and ``on_error="raise"``.
    """
    from tqdm.auto import tqdm

    builder = _builder(index, level, check, on_error)
    units = _units(index, level)
    bar = tqdm(units, desc=f"reading BIDS headers ({level} rows)", unit=level, disable=not progress)
    for unit in bar:
        yield from builder.rows([unit], report)


def _generate(units: list[list[BidsItem]], builder: _RowBuilder) -> Iterator[dict[str, Any]]:
    yield from builder.rows(units, None)


def streaming_rows(
    index: BidsIndex,
    *,
    level: Level = "file",
    on_error: OnError = "raise",
    check: Check = "header",
) -> datasets.IterableDataset:
    """The rows of :func:`iter_rows` as an ``IterableDataset`` that reads files as it is iterated.

    Each row is a shard of the generator, so ``DataLoader`` workers (and
    ``split_dataset_by_node``) share the rows out; skipped files are warned about
    in the process that skips them.
    """
    from datasets import IterableDataset

    return IterableDataset.from_generator(
        _generate,
        features=bids_features(index, level=level),
        gen_kwargs={
            "units": _units(index, level),
            "builder": _builder(index, level, check, on_error),
        },
    )
