"""Where coordinates come from: NiMARE's shipped sets, files, and online releases.

:func:`load_studyset` turns any supported source into a NiMARE ``Studyset`` that
reads each focus in the space it was reported in (``target=None``), so nothing
is converted before :mod:`brrrr.ingest.neurosynth.table` decides how.

Example:
    >>> from brrrr.ingest.neurosynth.sources import load_studyset
    >>> studyset, label = load_studyset("nimare:test_sleuth_file2.txt")  # doctest: +SKIP
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

from brrrr.core.errors import MissingDependencyError
from brrrr.ingest.errors import CoordinateSourceError

__all__ = ["SHIPPED_STUDYSET", "load_studyset", "require_nimare"]

SHIPPED_STUDYSET = "nback_vs_flanker_studyset_2026-07"
_ONLINE = ("neurostore", "neurosynth", "neuroquery")


def require_nimare() -> Any:
    """Import NiMARE, or say which extra installs it."""
    try:
        import nimare
    except ImportError as exc:
        raise MissingDependencyError(
            f"coordinate databases need NiMARE ({exc}); "
            'install it with: pip install "brrrr-ingest[neurosynth]"'
        ) from None
    return nimare


def _shipped(name: str) -> Path:
    nimare = require_nimare()
    package = Path(nimare.__file__).parent
    for folder in (package / "resources", package / "tests" / "data"):
        if (folder / name).exists():
            return folder / name
    raise CoordinateSourceError(
        "NiMARE ships no resource of this name (look in nimare/resources and nimare/tests/data)",
        path=f"nimare:{name}",
    )


def _from_path(path: Path) -> Any:
    from nimare.studyset import Studyset

    if not path.exists():
        raise CoordinateSourceError("no such file or folder", path=path)
    name = path.name.lower()
    if path.is_dir():
        if not (path / "studyset.json").exists():
            raise CoordinateSourceError(
                "a folder source must be a NiMARE parquet studyset (with studyset.json)", path=path
            )
        return Studyset(str(path), target=None)
    if name.endswith(".txt"):
        return Studyset.from_sleuth(str(path), target=None)
    if name.endswith((".tsv", ".tsv.gz")) and "coordinates" in name:
        metadata = path.with_name(path.name.replace("coordinates", "metadata"))
        if not metadata.exists():
            raise CoordinateSourceError(
                f"a Neurosynth coordinates file needs its metadata file next to it ({metadata.name})",
                path=path,
            )
        from nimare.io import convert_neurosynth_to_studyset

        return convert_neurosynth_to_studyset(str(path), str(metadata), target=None)
    if name.endswith((".json", ".json.gz")):
        from nimare.utils import load_json

        document = load_json(path)
        if isinstance(document, dict) and isinstance(document.get("studies"), list):
            return Studyset(document, target=None)
        if (
            isinstance(document, dict)
            and document
            and all(isinstance(v, dict) and "contrasts" in v for v in document.values())
        ):
            from nimare.dataset import Dataset

            return Studyset.from_dataset(Dataset(document, target=None))
        raise CoordinateSourceError(
            "JSON that is neither a NIMADS studyset nor a NiMARE dataset", path=path
        )
    raise CoordinateSourceError(
        "unknown source format (expected a parquet studyset folder, NIMADS or NiMARE "
        "JSON, a Sleuth .txt, or a Neurosynth *coordinates.tsv.gz)",
        path=path,
    )


def _online(kind: str, version: str | None, data_dir: str | os.PathLike[str] | None) -> Any:
    from nimare import extract
    from nimare.studyset import Studyset

    where = f"{kind}:{version}" if version else kind
    try:
        if kind == "neurostore":
            folder = extract.fetch_neurostore(
                version=version or "latest", data_dir=data_dir, return_type="files"
            )
            return Studyset(folder, target=None)
        fetch = extract.fetch_neurosynth if kind == "neurosynth" else extract.fetch_neuroquery
        default = "7" if kind == "neurosynth" else "1"
        found = fetch(
            data_dir=data_dir,
            version=version or default,
            return_type="files",
            source="abstract",
            vocab="terms",
        )
    except Exception as exc:  # requests, tarfile, checksum… errors of NiMARE's fetchers
        raise CoordinateSourceError(f"download failed: {exc}", path=where) from exc
    from nimare.io import convert_neurosynth_to_studyset

    return convert_neurosynth_to_studyset(
        found[0]["coordinates"], found[0]["metadata"], target=None
    )


def load_studyset(
    source: Any = None, *, data_dir: str | os.PathLike[str] | None = None
) -> tuple[Any, str]:
    """A NiMARE ``Studyset`` reading coordinates in the space each was reported in.

    Args:
        source: ``None`` or ``"shipped"`` (NiMARE's n-back vs flanker studyset);
            ``"nimare:NAME"`` (a file or folder NiMARE ships in ``resources`` or
            ``tests/data``); ``"neurostore[:VERSION]"``, ``"neurosynth[:VERSION]"``,
            ``"neuroquery[:VERSION]"`` (downloaded by NiMARE's fetchers: needs a
            network); a path (parquet studyset folder, NIMADS or NiMARE JSON,
            Sleuth text, Neurosynth ``*coordinates.tsv.gz``); or a NiMARE
            ``Studyset`` / ``Dataset`` object.
        data_dir: Where NiMARE's fetchers keep downloads.

    Returns:
        ``(studyset, label)``; the label names the source in the table.

    Raises:
        MissingDependencyError: NiMARE is not installed.
        CoordinateSourceError: The source is unknown, unreadable or failed to download.
    """
    require_nimare()
    with warnings.catch_warnings():
        # Dataset input is deprecated in NiMARE, and target=None makes it warn that
        # no space is set: both are what this reader asks for on purpose.
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", "No mask or target space specified", UserWarning)
        return _load(source, data_dir)


def _load(source: Any, data_dir: str | os.PathLike[str] | None) -> tuple[Any, str]:
    from nimare.dataset import Dataset
    from nimare.studyset import Studyset

    if isinstance(source, Studyset):
        return source.with_context(space=None), f"studyset:{source.id}"
    if isinstance(source, Dataset):
        return Studyset.from_dataset(source).with_context(space=None), "nimare-dataset"
    text = "shipped" if source is None else os.fspath(source)
    kind, _, rest = text.partition(":")
    if text == "shipped":
        shipped = _shipped(SHIPPED_STUDYSET)
        return Studyset(str(shipped), target=None), f"nimare:{SHIPPED_STUDYSET}"
    if kind == "nimare" and rest:
        return _from_path(_shipped(rest)), text
    if kind in _ONLINE:
        return _online(kind, rest or None, data_dir), text
    try:
        return _from_path(Path(text)), text
    except CoordinateSourceError:
        raise
    except (ValueError, KeyError, TypeError, OSError) as exc:
        raise CoordinateSourceError(f"cannot read it: {exc}", path=text) from exc
