"""Writers of small test inputs that every ``brrrr`` package's tests reuse.

* :func:`write_nifti` / :func:`write_broken_nifti`: tiny NIfTI files, good or
  with one specific fault.
* :func:`write_dicom_series`: a DICOM series (or one enhanced multi-frame file)
  from an array and a RAS affine, with shuffled file names, rescale, optional
  missing or duplicated slices, 4-D volumes (multi-echo, DWI, fMRI), Philips
  private scaling, compressed pixel data, no preamble;
  :func:`write_dicom_mosaics`: Siemens mosaics with a CSA header.
* :func:`write_bids_tree`: a small multi-session BIDS dataset with sidecars,
  events, DWI gradients, phenotype and lesion-mask derivatives.
* :func:`local_cluster` / :func:`kill_once_plugin` / :func:`snapshot_files`: a real
  two-worker Dask cluster on 127.0.0.1, a worker that dies once as a task finishes,
  and the inode/mtime of every output file; :func:`square_task`, :func:`fail_task`,
  :func:`die_task`: tasks the workers can import (needs ``brrrr-core[dask]``, imported
  lazily).
"""

from brrrr.core.testing._bids import DEFAULT_SCANS, BidsScan, write_bids_tree
from brrrr.core.testing._dask import (
    die_task,
    fail_task,
    kill_once_plugin,
    local_cluster,
    snapshot_files,
    square_task,
)
from brrrr.core.testing._dicom import write_dicom_series
from brrrr.core.testing._dicom_mosaic import write_dicom_mosaics
from brrrr.core.testing._files import BrokenKind, write_broken_nifti, write_nifti

__all__ = [
    "DEFAULT_SCANS",
    "BidsScan",
    "BrokenKind",
    "die_task",
    "fail_task",
    "kill_once_plugin",
    "local_cluster",
    "snapshot_files",
    "square_task",
    "write_bids_tree",
    "write_broken_nifti",
    "write_dicom_mosaics",
    "write_dicom_series",
    "write_nifti",
]
