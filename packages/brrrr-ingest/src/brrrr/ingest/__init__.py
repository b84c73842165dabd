"""brrrr.ingest: neuroimaging datasets to Hugging Face datasets, fetchers, coordinate databases.

* :func:`load_bids`: any BIDS dataset as a ``datasets.Dataset`` / ``IterableDataset``
  (built on pybids; one row per file, session or subject).
* :func:`to_hf`: Parquet shards by a byte budget with embedded ``Nifti`` bytes, a
  SHA-256 manifest and a dataset card; resumable.
* :func:`push`: convert and upload to the Hub as shards are written; resumable.
* :func:`verify`: check an output folder or Hub repo against its manifest.
* :func:`validate`: counts against a paper's numbers, empty files, headers, BIDS validator.
* :mod:`brrrr.ingest.fetch`: resumable, verified downloads from OpenNeuro and EBRAINS.
* :mod:`brrrr.ingest.neurosynth`: tidy coordinate tables from NiMARE, Neurosynth, NeuroStore.

Example:
    >>> from brrrr.ingest import load_bids
    >>> ds = load_bids("ds004884", level="session")  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import lazy_loader

if TYPE_CHECKING:
    from brrrr.ingest.bids import load_bids
    from brrrr.ingest.hub import push
    from brrrr.ingest.shards import to_hf
    from brrrr.ingest.validate import validate
    from brrrr.ingest.verify import verify

__all__ = ["load_bids", "push", "to_hf", "validate", "verify"]

# Imported on first use (PEP 562, through lazy_loader), so that the `brrrr` command starts
# without importing pybids, datasets and nibabel for commands that do not need them.
__getattr__, __dir__, _ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "bids": ["load_bids"],
        "hub": ["push"],
        "shards": ["to_hf"],
        "validate": ["validate"],
        "verify": ["verify"],
    },
)
