"""The explorer's data side: open a folder, filter its rows without decoding, decode one row.

A folder is either a BIDS dataset (``dataset_description.json`` at its root, indexed by
:func:`brrrr.ingest.index.index_bids` and read into rows by :func:`brrrr.ingest.rows.iter_rows`,
headers only) or the output of ``brrrr bids to-hf`` (Parquet shards under ``data/``). Either
way the rows have the same columns (:func:`brrrr.ingest.rows.bids_schema`): BIDS entities,
header facts (``shape``, ``spacing``, ``axcodes``, ``dtype``…), the sidecar as JSON, and the
image. :func:`open_dataset` keeps every column but the image, so filtering (:func:`filter_rows`)
never reads an image byte; :func:`load_row` reads and decodes the one image asked for.

Example:
    >>> from brrrr.demos.apps._explorer_data import RowFilter, filter_rows, open_dataset
    >>> dataset = open_dataset("sample/explorer/bids-hf")  # doctest: +SKIP
    >>> table = filter_rows(dataset, RowFilter(entities={"suffix": ["T1w"]}))  # doctest: +SKIP
"""

from __future__ import annotations

import gzip
import io
import json
import math
import os
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from brrrr.core.errors import BrrrrError, MissingDependencyError
from brrrr.demos.errors import ExplorerError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from brrrr.core import Volume

__all__ = [
    "NA",
    "ExplorerDataset",
    "RowDetail",
    "RowFilter",
    "filter_choices",
    "filter_rows",
    "load_row",
    "open_dataset",
    "rows_frame",
]

Kind = Literal["bids", "hf"]

#: How a missing value (an entity a file does not have) appears in choices and filters.
NA = "n/a"
#: Where each row's image is: a shard relative to the root (``hf``), or the image file (``bids``).
SOURCE_COLUMN = "_source"
#: The row's position in its shard (``hf``); -1 for a BIDS folder.
ROW_COLUMN = "_row"
#: ``shape`` as text (``48×57×48``), for choices and the table.
SHAPE_COLUMN = "_shape"
SPACING_MIN_COLUMN = "_spacing_min"
SPACING_MAX_COLUMN = "_spacing_max"
_DERIVED = (SOURCE_COLUMN, ROW_COLUMN, SHAPE_COLUMN, SPACING_MIN_COLUMN, SPACING_MAX_COLUMN)
_HINT = (
    "give a BIDS dataset (a folder with dataset_description.json) or the output of "
    "`brrrr bids to-hf` (a folder with data/*.parquet)"
)


@dataclass(frozen=True)
class ExplorerDataset:
    """A folder's rows, every column but the images (one row per image).

    Attributes:
        root: The folder (resolved).
        kind: ``"bids"`` or ``"hf"`` (``to_hf`` output).
        table: The rows: the dataset's columns except the image, plus ``_source``,
            ``_row``, ``_shape``, ``_spacing_min``, ``_spacing_max``.
        image_column: The name of the image column (not in ``table``).
        entity_columns: The columns holding BIDS entities, in BIDS filename order.
        skipped: Files of a BIDS folder left out because they could not be read
            (``"relpath: reason"``).
    """

    root: Path
    kind: Kind
    table: pa.Table
    image_column: str
    entity_columns: tuple[str, ...]
    skipped: tuple[str, ...] = ()

    @property
    def num_rows(self) -> int:
        """The number of rows (images)."""
        return int(self.table.num_rows)


@dataclass(frozen=True)
class RowFilter:
    """Which rows to keep; an empty selection keeps every row.

    Attributes:
        entities: Column → accepted values (entities, ``modality``, ``pipeline``);
            :data:`NA` accepts rows without the entity.
        shapes: Accepted shapes as text (``"48×57×48"``).
        axcodes: Accepted orientations (``"RAS"``, ``"LAS"``…).
        dtypes: Accepted voxel types (``"int16"``, ``"uint8"``…).
        spacing_min_mm: Keep rows whose every voxel size is at least this.
        spacing_max_mm: Keep rows whose every voxel size is at most this.
    """

    entities: Mapping[str, Sequence[str]] = field(default_factory=dict)
    shapes: Sequence[str] = ()
    axcodes: Sequence[str] = ()
    dtypes: Sequence[str] = ()
    spacing_min_mm: float | None = None
    spacing_max_mm: float | None = None


@dataclass(frozen=True)
class RowDetail:
    """One decoded row.

    Attributes:
        path: The row's ``path`` (relative to the BIDS root).
        volume: The decoded image (the first volume of a 4-D image).
        sidecar: Its sidecar metadata, after BIDS inheritance.
        header: ``{"columns": header columns of the row, "nifti": the NIfTI header fields}``.
        note: What was changed to show it (e.g. the first of several volumes), or ``""``.
    """

    path: str
    volume: Volume
    sidecar: dict[str, Any]
    header: dict[str, Any]
    note: str = ""


def _pyarrow() -> Any:
    try:
        import pyarrow as pa
        import pyarrow.compute
        import pyarrow.parquet
    except ImportError as exc:
        raise MissingDependencyError(
            f'the dataset explorer needs pyarrow ({exc}): pip install "brrrr-ingest"'
        ) from None
    return pa


def detect_kind(path: str | os.PathLike[str]) -> tuple[Path, Kind]:
    """Which kind of folder ``path`` is.

    Raises:
        ExplorerError: It does not exist, is not a folder, or is neither kind.
    """
    text = os.fspath(path).strip()
    if not text:
        raise ExplorerError(f"no folder given: {_HINT}")
    root = Path(text).expanduser()
    if not root.exists():
        raise ExplorerError(f"no such folder: {_HINT}", path=root)
    if not root.is_dir():
        raise ExplorerError(f"not a folder: {_HINT}", path=root)
    root = root.resolve()
    if (root / "dataset_description.json").is_file():
        return root, "bids"
    if _shards(root):
        return root, "hf"
    raise ExplorerError(
        f"neither a BIDS dataset (no dataset_description.json) nor a `brrrr bids to-hf` "
        f"output (no data/*.parquet): {_HINT}",
        path=root,
    )


def _shards(root: Path) -> list[Path]:
    found = sorted((root / "data").glob("*.parquet"))
    return found or sorted(root.glob("*.parquet"))


def open_dataset(path: str | os.PathLike[str]) -> ExplorerDataset:
    """Read a folder's rows without its images.

    Args:
        path: A BIDS dataset root or a ``to_hf`` output folder.

    Returns:
        The :class:`ExplorerDataset`.

    Raises:
        ExplorerError: The folder is neither kind, a shard cannot be read, or the
            dataset has one row per session or subject (the explorer shows one row per image).
        BidsError: pybids cannot index the BIDS folder (brrrr.ingest's error, naming it).
    """
    root, kind = detect_kind(path)
    if kind == "bids":
        return _open_bids(root)
    return _open_hf(root)


def _entity_columns(names: Sequence[str]) -> tuple[str, ...]:
    from brrrr.ingest.index import ENTITY_ORDER
    from brrrr.ingest.rows import entity_column

    known = [entity_column(e) for e in ENTITY_ORDER]
    present = set(names)
    return tuple(c for c in known if c in present)


def _with_derived(table: pa.Table, sources: list[str], rows: list[int]) -> pa.Table:
    pa = _pyarrow()
    shapes = table.column("shape").to_pylist()
    spacings = table.column("spacing").to_pylist()
    shape_text = ["×".join(str(n) for n in s) if s else None for s in shapes]
    low = [min(s) if s else None for s in spacings]
    high = [max(s) if s else None for s in spacings]
    for name, values, kind in (
        (SOURCE_COLUMN, sources, pa.string()),
        (ROW_COLUMN, rows, pa.int64()),
        (SHAPE_COLUMN, shape_text, pa.string()),
        (SPACING_MIN_COLUMN, low, pa.float64()),
        (SPACING_MAX_COLUMN, high, pa.float64()),
    ):
        table = table.append_column(name, pa.array(values, type=kind))
    return table


def _check_columns(names: Sequence[str], root: Path) -> None:
    missing = [c for c in ("path", "shape", "spacing", "axcodes", "dtype") if c not in names]
    if missing:
        raise ExplorerError(
            f"the rows have no {', '.join(missing)} column: not the file-level output of "
            "`brrrr bids to-hf` (convert with --level file)",
            path=root,
        )


def _open_bids(root: Path) -> ExplorerDataset:
    import warnings

    from brrrr.ingest.features import arrow_schema
    from brrrr.ingest.index import index_bids
    from brrrr.ingest.rows import LoadReport, bids_schema, iter_rows

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # skipped files are listed in the report instead
        index = index_bids(root)
        report = LoadReport()
        rows = list(iter_rows(index, on_error="skip", report=report, progress=False))
    schema = arrow_schema(bids_schema(index))
    pa = _pyarrow()
    table = pa.Table.from_pylist(rows, schema=schema)
    sources = [row["image"]["path"] for row in rows]
    table = table.drop_columns(["image"])
    return ExplorerDataset(
        root=root,
        kind="bids",
        table=_with_derived(table, sources, [-1] * len(rows)),
        image_column="image",
        entity_columns=_entity_columns(table.column_names),
        skipped=tuple(f"{s.path}: {s.reason}" for s in report.skipped),
    )


def _image_columns(schema: pa.Schema, shard: Path) -> dict[str, bool]:
    """Image columns of a shard (name → is a list), from its ``huggingface`` features."""
    from brrrr.ingest.features import image_columns

    raw = (schema.metadata or {}).get(b"huggingface")
    if raw is not None:
        try:
            features = json.loads(raw)["info"]["features"]
        except (ValueError, KeyError, TypeError):
            raise ExplorerError(
                "the Parquet metadata 'huggingface' holds no readable features", path=shard
            ) from None
        return image_columns(features)
    # Written by something else: a struct<bytes, path> column is an image (datasets' layout).
    pa = _pyarrow()
    image = pa.struct({"bytes": pa.binary(), "path": pa.string()})
    return {f.name: False for f in schema if f.type == image}


def _open_hf(root: Path) -> ExplorerDataset:
    pa = _pyarrow()
    pq = pa.parquet
    tables = []
    sources: list[str] = []
    rows: list[int] = []
    image_column: str | None = None
    for shard in _shards(root):
        try:
            handle = pq.ParquetFile(shard)
        except (OSError, pa.ArrowException) as exc:
            raise ExplorerError(f"cannot read this Parquet shard: {exc}", path=shard) from None
        schema = handle.schema_arrow
        images = _image_columns(schema, shard)
        if any(images.values()):
            raise ExplorerError(
                "the rows hold lists of images (one row per session or subject): the explorer "
                "shows one row per image (convert with `brrrr bids to-hf --level file`)",
                path=shard,
            )
        if len(images) != 1:
            raise ExplorerError(
                f"expected one image column, found {len(images)} ({', '.join(images) or 'none'})",
                path=shard,
            )
        name = next(iter(images))
        if image_column not in (None, name):
            raise ExplorerError(
                f"the image column is {name!r} here but {image_column!r} in earlier shards",
                path=shard,
            )
        image_column = name
        columns = [c for c in schema.names if c != name]
        _check_columns(columns, shard)
        try:
            # Column projection: Parquet stores each column apart, so the image bytes
            # are not even read from the disk.
            table = handle.read(columns=columns)
        except (OSError, pa.ArrowException) as exc:
            raise ExplorerError(f"cannot read this Parquet shard: {exc}", path=shard) from None
        tables.append(table)
        sources += [shard.relative_to(root).as_posix()] * table.num_rows
        rows += list(range(table.num_rows))
    assert image_column is not None  # detect_kind found at least one shard
    try:
        table = pa.concat_tables(tables, promote_options="default")
    except pa.ArrowException as exc:
        raise ExplorerError(f"the shards have different columns: {exc}", path=root) from None
    return ExplorerDataset(
        root=root,
        kind="hf",
        table=_with_derived(table, sources, rows),
        image_column=image_column,
        entity_columns=_entity_columns(table.column_names),
    )


# --- cached opening ---------------------------------------------------------------------------

_CACHE: dict[Path, tuple[tuple[Any, ...], ExplorerDataset]] = {}
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 8


def _stamp(root: Path) -> tuple[Any, ...]:
    """What changes when the folder's content does (its listing, and the shards' sizes/times)."""
    entries = []
    for folder in (root, root / "data"):
        if folder.is_dir():
            for entry in sorted(os.scandir(folder), key=lambda e: e.name):
                stat = entry.stat()
                entries.append((folder.name, entry.name, stat.st_size, stat.st_mtime_ns))
    return tuple(entries)


def open_dataset_cached(path: str | os.PathLike[str]) -> ExplorerDataset:
    """:func:`open_dataset`, reusing the last result for an unchanged folder.

    A BIDS folder is indexed again only when its root or ``data/`` listing changes.
    """
    root, _ = detect_kind(path)
    stamp = _stamp(root)
    with _CACHE_LOCK:
        hit = _CACHE.get(root)
        if hit is not None and hit[0] == stamp:
            return hit[1]
    dataset = open_dataset(root)
    with _CACHE_LOCK:
        _CACHE[root] = (stamp, dataset)
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
    return dataset


# --- filtering --------------------------------------------------------------------------------


def _natural(text: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def _values(table: pa.Table, column: str) -> list[str]:
    found = {NA if v is None else str(v) for v in table.column(column).to_pylist()}
    return sorted(found, key=lambda v: (v == NA, _natural(v)))


#: The filter columns besides the entities: the modality key, the derivative pipeline.
EXTRA_FILTERS = ("modality", "pipeline")


def filter_choices(dataset: ExplorerDataset) -> dict[str, list[str]]:
    """The values each filter can take, from the data (sorted, :data:`NA` last).

    Returns:
        Column → values, for each entity column and ``modality``/``pipeline`` present with
        at least one value, and ``"shape"``, ``"axcodes"``, ``"dtype"``.
    """
    table = dataset.table
    out: dict[str, list[str]] = {}
    for column in (*dataset.entity_columns, *EXTRA_FILTERS):
        if column in table.column_names:
            values = _values(table, column)
            if values and values != [NA]:
                out[column] = values
    out["shape"] = _values(table, SHAPE_COLUMN)
    out["axcodes"] = _values(table, "axcodes")
    out["dtype"] = _values(table, "dtype")
    return out


def spacing_range(dataset: ExplorerDataset) -> tuple[float, float] | None:
    """The smallest and largest voxel size of any row, in mm (``None`` for no rows)."""
    pa = _pyarrow()
    if dataset.num_rows == 0:
        return None
    low = pa.compute.min(dataset.table.column(SPACING_MIN_COLUMN)).as_py()
    high = pa.compute.max(dataset.table.column(SPACING_MAX_COLUMN)).as_py()
    return float(low), float(high)


def _accept(column: Any, values: Sequence[str]) -> Any:
    pa = _pyarrow()
    pc = pa.compute
    wanted = [v for v in values if v != NA]
    mask = pc.is_in(pc.cast(column, pa.string()), value_set=pa.array(wanted, type=pa.string()))
    mask = pc.fill_null(mask, False)
    if NA in values:
        mask = pc.or_(mask, pc.is_null(column))
    return mask


def filter_rows(dataset: ExplorerDataset, row_filter: RowFilter) -> pa.Table:
    """The rows that pass ``row_filter``, read from the header columns only.

    Args:
        dataset: From :func:`open_dataset`.
        row_filter: What to keep.

    Returns:
        The matching rows of ``dataset.table``, in order.

    Raises:
        ExplorerError: A filter names a column the dataset does not have, or the spacing
            range is empty or not finite.
    """
    pa = _pyarrow()
    pc = pa.compute
    table = dataset.table
    mask = pa.array([True] * table.num_rows, type=pa.bool_())
    selections: list[tuple[str, Sequence[str]]] = [
        (name, values) for name, values in row_filter.entities.items() if values
    ]
    selections += [
        (column, values)
        for column, values in (
            (SHAPE_COLUMN, row_filter.shapes),
            ("axcodes", row_filter.axcodes),
            ("dtype", row_filter.dtypes),
        )
        if values
    ]
    for column, values in selections:
        if column not in table.column_names or (column in _DERIVED and column != SHAPE_COLUMN):
            raise ExplorerError(
                f"no column {column!r} to filter on; the columns are: "
                + ", ".join(c for c in table.column_names if c not in _DERIVED),
                path=dataset.root,
            )
        mask = pc.and_(mask, _accept(table.column(column), values))
    low, high = row_filter.spacing_min_mm, row_filter.spacing_max_mm
    for label, bound in (("minimum", low), ("maximum", high)):
        if bound is not None and not math.isfinite(bound):
            raise ExplorerError(f"the {label} spacing must be a finite number, got {bound}")
    if low is not None and high is not None and low > high:
        raise ExplorerError(f"the spacing range is empty: {low:g} mm > {high:g} mm")
    if low is not None:
        mask = pc.and_(mask, pc.fill_null(pc.greater_equal(table[SPACING_MIN_COLUMN], low), False))
    if high is not None:
        mask = pc.and_(mask, pc.fill_null(pc.less_equal(table[SPACING_MAX_COLUMN], high), False))
    return table.filter(mask)


def _number_text(value: float) -> str:
    return f"{value:.3g}"


def rows_frame(dataset: ExplorerDataset, table: pa.Table) -> pd.DataFrame:
    """The rows as the explorer's table shows them: entities, modality, header facts.

    Args:
        dataset: Where ``table`` comes from (for its entity columns).
        table: Rows of ``dataset.table`` (e.g. from :func:`filter_rows`).

    Returns:
        A ``pandas.DataFrame``: ``path``, the entities any row has, ``modality``, ``shape``,
        ``spacing_mm``, ``axcodes``, ``dtype``, ``file_kb``.
    """
    import pandas as pd

    data: dict[str, list[Any]] = {"path": table.column("path").to_pylist()}
    for column in dataset.entity_columns:
        values = table.column(column).to_pylist()
        if any(v is not None for v in dataset.table.column(column).to_pylist()):
            data[column] = ["" if v is None else v for v in values]
    if "modality" in table.column_names:
        data["modality"] = table.column("modality").to_pylist()
    data["shape"] = table.column(SHAPE_COLUMN).to_pylist()
    data["spacing_mm"] = [
        "" if s is None else "×".join(_number_text(v) for v in s)
        for s in table.column("spacing").to_pylist()
    ]
    data["axcodes"] = table.column("axcodes").to_pylist()
    data["dtype"] = table.column("dtype").to_pylist()
    if "file_bytes" in table.column_names:
        data["file_kb"] = [
            None if n is None else round(n / 1000, 1)
            for n in table.column("file_bytes").to_pylist()
        ]
    return pd.DataFrame(data)


# --- one row ----------------------------------------------------------------------------------


def _find(dataset: ExplorerDataset, path: str) -> dict[str, Any]:
    pa = _pyarrow()
    wanted = path.strip()
    hits = dataset.table.filter(pa.compute.equal(dataset.table.column("path"), wanted))
    if hits.num_rows == 0:
        raise ExplorerError(
            f"no row has the path {wanted!r}; pick a row of the table", path=dataset.root
        )
    return dict(hits.slice(0, 1).to_pylist()[0])


def _read_cell(dataset: ExplorerDataset, row: dict[str, Any]) -> tuple[bytes, Path]:
    """The bytes of the row's image file, and where they come from."""
    if dataset.kind == "bids":
        where = Path(row[SOURCE_COLUMN])
        try:
            return where.read_bytes(), where
        except OSError as exc:
            raise ExplorerError(
                f"cannot read the image: {exc.strerror or exc}", path=where
            ) from None
    pa = _pyarrow()
    shard = dataset.root / row[SOURCE_COLUMN]
    try:
        handle = pa.parquet.ParquetFile(shard)
        position = int(row[ROW_COLUMN])
        start = 0
        for group in range(handle.metadata.num_row_groups):
            size = handle.metadata.row_group(group).num_rows
            if position < start + size:
                # One row group of one column: the other rows' images stay on disk
                # only as far as their row group is not this one.
                column = handle.read_row_group(group, columns=[dataset.image_column])
                cell = column.column(0)[position - start].as_py()
                break
            start += size
        else:
            raise ExplorerError(
                f"the shard has no row {position}; open the folder again", path=shard
            )
    except (OSError, pa.ArrowException) as exc:
        raise ExplorerError(f"cannot read this Parquet shard: {exc}", path=shard) from None
    if not cell or not cell.get("bytes"):
        raise ExplorerError(
            f"the row {row['path']!r} embeds no image bytes (its image cell is empty)", path=shard
        )
    return bytes(cell["bytes"]), shard


def _plain(value: Any) -> Any:
    """A header value as JSON: numbers, text, lists; non-finite floats as text."""
    import numpy as np

    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()] if value.ndim else _plain(value.item())
    if isinstance(value, np.generic):
        return _plain(value.item())
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, bytes):
        return value.split(b"\0", 1)[0].decode("latin-1")
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def nifti_header(data: bytes, *, name: str) -> dict[str, Any]:
    """The NIfTI-1/2 header fields of an image file's bytes (gzipped or not).

    Raises:
        ExplorerError: The bytes do not start with a NIfTI header.
    """
    import nibabel as nib

    head = data[:540]
    if data[:2] == b"\x1f\x8b":
        try:
            head = gzip.GzipFile(fileobj=io.BytesIO(data)).read(540)
        except (OSError, EOFError) as exc:
            raise ExplorerError(f"cannot inflate the image: {exc}", path=name) from None
    size = int.from_bytes(head[:4], "little") if len(head) >= 4 else 0
    swapped = int.from_bytes(head[:4], "big") if len(head) >= 4 else 0
    kind = nib.Nifti2Header if 540 in (size, swapped) else nib.Nifti1Header
    try:
        header = kind.from_fileobj(io.BytesIO(head), check=False)
    except Exception as exc:  # nibabel raises assorted errors for bytes that are no header
        raise ExplorerError(f"not a NIfTI header: {exc}", path=name) from None
    if header["sizeof_hdr"] not in (348, 540):
        raise ExplorerError("not a NIfTI header (sizeof_hdr is neither 348 nor 540)", path=name)
    fields = {key: _plain(header[key]) for key in header}
    fields["data_dtype"] = str(header.get_data_dtype())
    return fields


def load_row(dataset: ExplorerDataset, path: str) -> RowDetail:
    """Read and decode one row's image, with its sidecar and header.

    Args:
        dataset: From :func:`open_dataset`.
        path: The row's ``path`` column (the image relative to the BIDS root).

    Returns:
        The :class:`RowDetail`.

    Raises:
        ExplorerError: No row has that path, or its image cannot be read or decoded
            (the message names the row and the shard or file).
    """
    from brrrr.core import load_volume

    row = _find(dataset, path)
    data, where = _read_cell(dataset, row)
    try:
        volume = load_volume(data)
    except BrrrrError as exc:
        raise ExplorerError(
            f"cannot decode the image of the row {row['path']!r}: {exc.message}", path=where
        ) from None
    note = ""
    if volume.channels > 1:
        note = f"showing the first of {volume.channels} volumes"
        volume = volume.with_data(volume.data[0])
    try:
        sidecar = json.loads(row.get("sidecar") or "{}")
    except ValueError:
        sidecar = {"unreadable sidecar": row.get("sidecar")}
    columns = {key: row.get(key) for key in ("shape", "spacing", "axcodes", "dtype", "file_bytes")}
    affine = row.get("affine")
    if affine is not None:
        columns["affine"] = [list(affine[i : i + 4]) for i in range(0, 16, 4)]
    header = {"columns": _plain(columns), "nifti": nifti_header(data, name=row["path"])}
    return RowDetail(path=row["path"], volume=volume, sidecar=sidecar, header=header, note=note)
