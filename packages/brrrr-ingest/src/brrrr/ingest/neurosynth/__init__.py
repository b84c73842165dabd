"""Coordinate databases (NeuroStore, Neurosynth, NIMADS, Sleuth) as one tidy table of foci.

Needs NiMARE: ``pip install "brrrr-ingest[neurosynth]"``.

* :mod:`~brrrr.ingest.neurosynth.sources`: what can be read (:func:`load_studyset`):
  NiMARE's shipped studysets, files, and NeuroStore/Neurosynth/NeuroQuery releases.
* :mod:`~brrrr.ingest.neurosynth.table`: the table, one row per focus
  (:func:`coordinates_table`; columns in its docstring), Talairach converted to
  MNI, foci outside the MNI brain mask flagged and listed, sample sizes only
  where declared; as Parquet and as a ``datasets.Dataset``.
* :mod:`~brrrr.ingest.neurosynth.cli`: ``brrrr neurosynth export [SOURCE] OUT``.

Example:
    >>> from brrrr.ingest.neurosynth import coordinates_table, summarize
    >>> summarize(coordinates_table())["foci"]  # doctest: +SKIP
    9492
"""

from brrrr.ingest.errors import CoordinateSourceError
from brrrr.ingest.neurosynth.cli import neurosynth_app
from brrrr.ingest.neurosynth.sources import SHIPPED_STUDYSET, load_studyset
from brrrr.ingest.neurosynth.table import (
    COLUMNS,
    brain_mask_membership,
    coordinates_table,
    export,
    outside_mask,
    read_parquet,
    schema,
    summarize,
    tal_to_mni,
    to_dataset,
    write_parquet,
)

__all__ = [
    "COLUMNS",
    "SHIPPED_STUDYSET",
    "CoordinateSourceError",
    "brain_mask_membership",
    "coordinates_table",
    "export",
    "load_studyset",
    "neurosynth_app",
    "outside_mask",
    "read_parquet",
    "schema",
    "summarize",
    "tal_to_mni",
    "to_dataset",
    "write_parquet",
]
