"""Index a BIDS dataset with pybids and reduce it to plain, picklable data.

No per-dataset glob patterns: pybids finds the images (raw and
``derivatives/*``), their entities and the files around them; the sidecar
metadata after the BIDS inheritance principle and the ``events.tsv`` /
``.bval`` / ``.bvec`` that apply to each image are resolved from what pybids
found, by pybids' own rules, in one pass. :func:`index_bids` opens no image.

Example:
    >>> from brrrr.ingest.index import index_bids
    >>> index = index_bids("ds004884", suffixes=["T1w", "lesion_mask"])  # doctest: +SKIP
    >>> index.modalities  # doctest: +SKIP
    ('T1w', 'lesion_mask')
"""

from __future__ import annotations

import csv
import json
import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from brrrr.ingest.errors import BidsError

__all__ = ["ENTITY_ORDER", "LEADING_ENTITIES", "NA_VALUES", "BidsIndex", "BidsItem", "index_bids"]

#: Cell values of a BIDS ``.tsv`` that mean "no value".
NA_VALUES = frozenset({"n/a", "", "NA", "nan"})
_IMAGE_EXTENSIONS = [".nii", ".nii.gz"]
# Always present, in this order, so every level and every shard has the same schema.
LEADING_ENTITIES = ("subject", "session", "datatype", "suffix")
_NOT_COLUMNS = {"extension"}
# pybids' entity names in the order of its "bids" then "derivatives" configs (the
# BIDS filename order). Fixed here, because the layout's own listing comes from a
# database query whose order varies between runs, and the schema must not.
ENTITY_ORDER = (
    "subject", "session", "sample", "task", "tracksys", "acquisition", "nucleus", "volume",
    "ceagent", "staining", "tracer", "reconstruction", "direction", "run", "proc", "modality",
    "echo", "flip", "inv", "mt", "part", "recording", "space", "chunk", "suffix", "scans", "fmap",
    "datatype", "atlas", "roi", "label", "desc", "from", "to", "mode", "hemi", "segmentation",
    "res", "den", "model", "subset",
)  # fmt: skip


@dataclass(frozen=True)
class BidsItem:
    """One image as pybids describes it, before its files are opened (picklable).

    Attributes:
        path: Absolute path of the image.
        relpath: Path relative to the dataset root, with ``/`` separators.
        entities: BIDS entities (``subject``, ``session``, ``run``…) as strings.
        pipeline: Derivative pipeline folder (e.g. ``"lesion_masks"``); ``None`` for raw data.
        modality: Column key at session/subject level: the suffix for raw data
            (``"T1w"``), ``"{desc}_{suffix}"`` for derivatives (``"lesion_mask"``).
        sidecar: Sidecar metadata after the BIDS inheritance principle.
        events_path: The applicable ``events.tsv``, if any.
        bval_path: The applicable ``.bval`` (DWI only).
        bvec_path: The applicable ``.bvec`` (DWI only).
    """

    path: str
    relpath: str
    entities: dict[str, str]
    pipeline: str | None
    modality: str
    sidecar: dict[str, Any]
    events_path: str | None = None
    bval_path: str | None = None
    bvec_path: str | None = None


@dataclass
class BidsIndex:
    """What pybids found, reduced to plain data (picklable; no open database).

    Attributes:
        root: Dataset root.
        description: ``dataset_description.json``.
        items: Selected images in a stable order (subject, session, raw before
            derivatives, datatype, suffix, other entities, run number).
        entity_names: pybids names of the entities found, each a column of every file
            row (named by :func:`brrrr.ingest.rows.entity_column`).
        modalities: Modality keys in first-seen order.
        phenotype: ``participants.tsv`` rows by subject label (without ``sub-``).
        phenotype_types: Column type of each phenotype field (``int64``, ``float64``, ``string``).
    """

    root: Path
    description: dict[str, Any]
    items: list[BidsItem]
    entity_names: tuple[str, ...]
    modalities: tuple[str, ...]
    phenotype: dict[str, dict[str, Any]]
    phenotype_types: dict[str, str]


def _indexer() -> Any:
    """pybids' indexer without its metadata index (see :class:`_Sidecars`)."""
    from bids.layout.index import BIDSLayoutIndexer

    return BIDSLayoutIndexer(validate=False, index_metadata=False)


def _open_layout(root: Path, *, include_derivatives: bool) -> Any:
    from bids import BIDSLayout

    if not root.is_dir():
        raise BidsError("not a folder; give the root of a BIDS dataset", path=root)
    if not (root / "dataset_description.json").is_file():
        raise BidsError(
            "not a BIDS dataset: there is no dataset_description.json at its root "
            "(BIDS requires one, with at least Name and BIDSVersion)",
            path=root,
        )
    try:
        with warnings.catch_warnings():
            # pybids warns when no derivative folder has a description; the
            # folders it skipped get a more precise warning of ours.
            warnings.filterwarnings("ignore", message="Derivative indexing was requested")
            return BIDSLayout(
                root, derivatives=include_derivatives, validate=False, indexer=_indexer()
            )
    except Exception as exc:  # pybids raises ValueError/BIDSValidationError subclasses
        about_derivatives = include_derivatives and "deriv" in str(exc).lower()
        hint = " (or pass include_derivatives=False)" if about_derivatives else ""
        raise BidsError(f"pybids cannot index the dataset: {exc}{hint}", path=root) from None


def _pipeline_roots(layout: Any) -> list[tuple[str, Path]]:
    derivs = getattr(layout, "derivatives", {}) or {}
    return sorted(
        ((Path(name).name, Path(os.path.abspath(sub.root))) for name, sub in derivs.items()),
        key=lambda pair: -len(pair[1].parts),
    )


def _unregistered_pipelines(
    root: Path, registered: list[tuple[str, Path]]
) -> list[tuple[Any, str]]:
    """Layouts of ``derivatives/*`` folders that pybids skipped (no dataset_description.json).

    pybids drops such a pipeline with a warning; indexing it here keeps its
    images (e.g. lesion masks) instead of losing them without a trace.
    """
    from bids import BIDSLayout

    folder = root / "derivatives"
    if not folder.is_dir():
        return []
    known = {base for _, base in registered}
    found = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if sub in known or (sub / "dataset_description.json").is_file():
            continue
        warnings.warn(
            f"{sub}: derivative pipeline without dataset_description.json (BIDS requires one, "
            "with DatasetType 'derivative' and GeneratedBy); indexed anyway",
            RuntimeWarning,
            stacklevel=3,
        )
        try:
            found.append(
                (
                    BIDSLayout(
                        sub, validate=False, config=["bids", "derivatives"], indexer=_indexer()
                    ),
                    sub.name,
                )
            )
        except Exception as exc:
            raise BidsError(
                f"pybids cannot index this pipeline: {exc} (or pass include_derivatives=False)",
                path=sub,
            ) from None
    return found


def _filename_entities(layout: Any) -> dict[str, dict[str, str]]:
    """Filename entities of every file of ``layout`` and its derivatives, by pybids path.

    The same as ``BIDSFile.get_entities(metadata=False)`` (values as strings) for each
    file, read with one database query per layout instead of one per file, which took a
    third of the indexing time of a dataset of a few thousand files.
    """
    from bids.layout.models import Tag
    from bids.utils import bids_sort

    tags: dict[str, dict[str, Any]] = {}
    pending = [layout]
    while pending:
        current = pending.pop()
        pending += list(getattr(current, "derivatives", {}).values())
        query = current.session.query(Tag).filter(Tag.is_metadata == False)  # noqa: E712
        for tag in query.all():
            tags.setdefault(tag.file_path, {})[tag.entity_name] = tag.value
    return {path: {k: str(v) for k, v in bids_sort(found).items()} for path, found in tags.items()}


def _modality(entities: dict[str, str], pipeline: str | None) -> str:
    suffix = entities.get("suffix", "image")
    if pipeline is None:
        return suffix
    prefix = entities.get("desc") or pipeline
    return "".join(c if c.isalnum() else "_" for c in f"{prefix}_{suffix}")


def _run_number(value: str | None) -> int:
    try:
        return int(value) if value is not None else -1
    except ValueError:
        return -1


class _Companions:
    """Files that apply to images by the BIDS inheritance principle (``events.tsv``, ``.bval``…).

    A candidate applies to an image when it sits in the image's folder or an ancestor of it
    and each of its entities is one of the image's, with the same value; the nearest folder
    wins, then the most entities. This is pybids' ``get_nearest(strict=True)`` computed in
    one pass over candidates listed once, instead of one database query per image.
    """

    _IGNORED = ("suffix", "extension", "datatype")

    def __init__(
        self, layout: Any, filename_entities: dict[str, dict[str, str]], **filters: Any
    ) -> None:
        self._by_subject: dict[str, list[tuple[Path, dict[str, str], str]]] = {}
        for found in sorted(layout.get(return_type="filename", **filters)):
            path = os.path.abspath(found)
            entities = {
                k: v for k, v in filename_entities.get(found, {}).items() if k not in self._IGNORED
            }
            bucket = self._by_subject.setdefault(entities.get("subject", ""), [])
            bucket.append((Path(path).parent, entities, path))

    def nearest(self, image: Path, entities: dict[str, str]) -> str | None:
        """The applicable candidate nearest to ``image``, or ``None``."""
        subject = entities.get("subject", "")
        candidates = self._by_subject.get(subject, [])
        if subject:
            candidates = candidates + self._by_subject.get("", [])
        best: tuple[tuple[int, int], str] | None = None
        for folder, wanted, path in candidates:
            if not image.parent.is_relative_to(folder):
                continue
            if any(entities.get(k) != v for k, v in wanted.items()):
                continue
            rank = (len(folder.parts), len(wanted))
            if best is None or rank > best[0]:
                best = (rank, path)
        return None if best is None else best[1]


class _Sidecars:
    """Sidecar metadata of images by the BIDS inheritance principle, as pybids merges it.

    A ``.json`` applies to an image when it has the image's suffix, sits in the image's
    folder or an ancestor of it (within the image's own dataset: raw data or one
    derivative pipeline), and each of its entities is one of the image's, with the same
    value. The applicable files are merged from the farthest folder to the nearest, so
    nearer values win; ``null`` values count as absent, and keys that repeat one of the
    image's filename entities are left out. This is the rule of pybids' metadata index
    (``index_metadata=True``), applied to the JSON files pybids found, each read at most
    once: the metadata index writes every key of every sidecar into pybids' database
    and then answers one query per image, which took longer than the rest of the
    indexing together.
    """

    _IGNORED = ("suffix", "extension")

    def __init__(self, layout: Any, filename_entities: dict[str, dict[str, str]]) -> None:
        self._by_folder: dict[tuple[str, Path], list[tuple[dict[str, str], str]]] = {}
        self._loaded: dict[str, dict[str, Any]] = {}
        # pybids lists in natural path order; within a folder the first match wins, as there.
        for found in layout.get(extension=".json", return_type="filename"):
            entities = filename_entities.get(found, {})
            suffix = entities.get("suffix")
            if suffix is None:
                continue
            wanted = {k: v for k, v in entities.items() if k not in self._IGNORED}
            path = os.path.abspath(found)
            self._by_folder.setdefault((suffix, Path(path).parent), []).append((wanted, path))

    def _load(self, path: str) -> dict[str, Any]:
        if path not in self._loaded:
            try:
                with open(path, encoding="utf-8") as handle:
                    payload = json.load(handle)
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise BidsError(
                    f"cannot read the sidecar {Path(path).name}: {exc}", path=path
                ) from None
            if not isinstance(payload, dict):
                raise BidsError(f"the sidecar {Path(path).name} is not a JSON object", path=path)
            self._loaded[path] = payload
        return self._loaded[path]

    def metadata(self, image: Path, entities: dict[str, str], *, top: Path) -> dict[str, Any]:
        """The merged sidecar of ``image`` (``entities`` without ``extension``), up to ``top``."""
        suffix = entities.get("suffix")
        if suffix is None:
            return {}
        own = {k: v for k, v in entities.items() if k not in self._IGNORED}
        applicable: list[str] = []  # nearest folder first
        folder = image.parent
        while True:
            for wanted, path in self._by_folder.get((suffix, folder), []):
                if all(own.get(k) == v for k, v in wanted.items()):
                    applicable.append(path)
            if folder == top or folder.parent == folder:
                break
            folder = folder.parent
        merged: dict[str, Any] = {}
        for path in reversed(applicable):
            merged.update(self._load(path))
        sidecar = {}
        for key, value in merged.items():
            if value is None:
                continue
            if key in entities:
                if str(value) != entities[key]:
                    raise BidsError(
                        f"the sidecar says {key}={value!r} but the file name says "
                        f"{entities[key]!r}; reconcile them",
                        path=image,
                    )
                continue
            sidecar[key] = value
        return sidecar


def _read_phenotype(root: Path) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    path = root / "participants.tsv"
    if not path.is_file():
        return {}, {}
    with path.open(newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    if not rows or "participant_id" not in rows[0]:
        raise BidsError("participants.tsv has no participant_id column", path=path)
    columns = [c for c in rows[0] if c and c != "participant_id"]
    types = {c: _column_type(row.get(c) for row in rows) for c in columns}
    table = {}
    for row in rows:
        label = str(row["participant_id"]).removeprefix("sub-")
        table[label] = {c: _typed(row.get(c), types[c]) for c in columns}
    return table, types


def _column_type(values: Iterable[str | None]) -> str:
    kind = "int64"
    for value in values:
        if value is None or value.strip() in NA_VALUES:
            continue
        if kind == "int64":
            try:
                int(value)
                continue
            except ValueError:
                kind = "float64"
        try:
            float(value)
        except ValueError:
            return "string"
    return kind


def _typed(value: str | None, kind: str) -> Any:
    if value is None or value.strip() in NA_VALUES:
        return None
    if kind == "int64":
        return int(value)
    if kind == "float64":
        return float(value)
    return value


def index_bids(
    root: str | os.PathLike[str],
    *,
    subjects: Sequence[str] | None = None,
    sessions: Sequence[str] | None = None,
    datatypes: Sequence[str] | None = None,
    suffixes: Sequence[str] | None = None,
    include_derivatives: bool = True,
) -> BidsIndex:
    """Index a BIDS dataset with pybids and select images (no image is opened).

    Args:
        root: Dataset root (holds ``dataset_description.json``).
        subjects: Keep these subject labels (without ``sub-``); all when ``None``.
        sessions: Keep these session labels (without ``ses-``).
        datatypes: Keep these datatypes (``anat``, ``func``, ``dwi``…).
        suffixes: Keep images whose suffix (``T1w``) or modality key
            (``lesion_mask``) is listed.
        include_derivatives: Also index ``derivatives/*`` pipelines.

    Returns:
        The index.

    Raises:
        BidsError: ``root`` is not a BIDS dataset or pybids cannot index it.
    """
    root = Path(root).resolve()
    layout = _open_layout(root, include_derivatives=include_derivatives)
    query: dict[str, Any] = {"extension": _IMAGE_EXTENSIONS, "return_type": "filename"}
    for key, values in (("subject", subjects), ("session", sessions), ("datatype", datatypes)):
        if values is not None:
            query[key] = [str(v).removeprefix("sub-").removeprefix("ses-") for v in values]
    pipelines = _pipeline_roots(layout) if include_derivatives else []
    sources: list[tuple[Any, str | None]] = [(layout, None)]
    if include_derivatives:
        sources += _unregistered_pipelines(root, pipelines)
    items = []
    for source, fixed_pipeline in sources:
        items += _select(source, fixed_pipeline, root, pipelines, query, suffixes)
    rank = {name: i for i, name in enumerate(ENTITY_ORDER)}
    items.sort(key=lambda it: _sort_key(it, rank))
    present = {k for it in items for k in it.entities}
    others = sorted(present - set(LEADING_ENTITIES), key=lambda k: (rank.get(k, len(rank)), k))
    phenotype, phenotype_types = _read_phenotype(root)
    return BidsIndex(
        root=root,
        description=dict(layout.description or {}),
        items=items,
        entity_names=(*LEADING_ENTITIES, *others),
        modalities=tuple(dict.fromkeys(it.modality for it in items)),
        phenotype=phenotype,
        phenotype_types=phenotype_types,
    )


def _select(
    layout: Any,
    fixed_pipeline: str | None,
    root: Path,
    pipelines: list[tuple[str, Path]],
    query: dict[str, Any],
    suffixes: Sequence[str] | None,
) -> list[BidsItem]:
    filename_entities = _filename_entities(layout)
    sidecars = _Sidecars(layout, filename_entities)
    events = _Companions(layout, filename_entities, suffix="events", extension=".tsv")
    bvals = _Companions(layout, filename_entities, suffix="dwi", extension=".bval")
    bvecs = _Companions(layout, filename_entities, suffix="dwi", extension=".bvec")
    items = []
    for found in layout.get(**query):
        # abspath, not resolve: in DataLad/git-annex datasets images are links into .git.
        path = Path(os.path.abspath(found))
        owner = next((pair for pair in pipelines if path.is_relative_to(pair[1])), None)
        pipeline = fixed_pipeline or (owner[0] if owner else None)
        # Sidecars are inherited within the image's own dataset (raw data or its pipeline).
        top = owner[1] if owner and not fixed_pipeline else Path(layout.root)
        entities = {
            k: v for k, v in filename_entities.get(found, {}).items() if k not in _NOT_COLUMNS
        }
        modality = _modality(entities, pipeline)
        if suffixes is not None and not {entities.get("suffix"), modality} & set(suffixes):
            continue
        str_path = str(path)
        dwi = entities.get("suffix") == "dwi"
        items.append(
            BidsItem(
                path=str_path,
                relpath=path.relative_to(root).as_posix(),
                entities=entities,
                pipeline=pipeline,
                modality=modality,
                sidecar=sidecars.metadata(path, entities, top=top),
                events_path=events.nearest(path, entities) if "task" in entities else None,
                bval_path=bvals.nearest(path, entities) if dwi else None,
                bvec_path=bvecs.nearest(path, entities) if dwi else None,
            )
        )
    return items


def _sort_key(item: BidsItem, rank: dict[str, int]) -> tuple[Any, ...]:
    ent = item.entities
    rest = tuple(
        (rank.get(k, len(rank)), k, v)
        for k, v in sorted(ent.items())
        if k not in (*LEADING_ENTITIES, "run")
    )
    return (
        ent.get("subject", ""),
        ent.get("session", ""),
        item.pipeline is not None,
        item.pipeline or "",
        ent.get("datatype", ""),
        ent.get("suffix", ""),
        rest,
        _run_number(ent.get("run")),
        item.relpath,
    )
