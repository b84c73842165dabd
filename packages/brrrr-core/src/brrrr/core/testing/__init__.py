"""Writers of small test inputs that every ``brrrr`` package's tests reuse.

* :func:`write_nifti` / :func:`write_broken_nifti`: tiny NIfTI files, good or
  with one specific fault.
* :func:`write_dicom_series`: a DICOM series (or one enhanced multi-frame file)
  from an array and a RAS affine, with shuffled file names, rescale, and
  optional missing or duplicated slices.
* :func:`write_bids_tree`: a small multi-session BIDS dataset with sidecars,
  events, DWI gradients, phenotype and lesion-mask derivatives.
"""

from brrrr.core.testing._bids import DEFAULT_SCANS, BidsScan, write_bids_tree
from brrrr.core.testing._dicom import write_dicom_series
from brrrr.core.testing._files import BrokenKind, write_broken_nifti, write_nifti

__all__ = [
    "DEFAULT_SCANS",
    "BidsScan",
    "BrokenKind",
    "write_bids_tree",
    "write_broken_nifti",
    "write_dicom_series",
    "write_nifti",
]
