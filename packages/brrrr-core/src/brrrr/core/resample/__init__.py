"""Resampling onto a new voxel grid, preserving world position.

The one resampler of ``brrrr``: :meth:`brrrr.core.Volume.resample`, the NeuroVFM
preparation and the memory-budgeted microscopy path of ``brrrr.preprocess`` all run it.

Convention: every output voxel centre ``o`` lies at world position
``target_affine @ o``; its value is the input sampled at the voxel position
``inv(affine) @ target_affine @ o``. Samples that fall outside the input take
``fill``. At the edge (``boundary=``): ``"blend"`` (the default) lets linear values
blend towards ``fill`` within one voxel of the edge (scipy's ``mode="grid-constant"``,
torch's ``padding_mode="zeros"``); ``"extent"`` lets each voxel fill its extent, half a
voxel beyond its centre, with the edge value, and only further out ``fill`` (ITK, which
NeuroVFM uses; MONAI's ``"border"`` within the field of view). Cubic B-splines ring:
samples up to about a dozen voxels outside the input approach ``fill`` rather than
equal it, as in scipy.

Paths:

* **Separable** (:func:`plan_resample`, :class:`ResamplePlan`): every grid whose axes
  follow the input's — any change of spacing, flips, permutations (another
  orientation), crops and shifts. One 1-D pass per output axis, planned once in
  float64; whole-voxel axes are strided views (free), regular samples read strided
  views instead of gathering, and the pass that shrinks the volume most runs first.
  :class:`SlabResampler` computes the same output one slab at a time, bit for bit.
* **Oblique** (rotations, shears): ``torch.grid_sample`` or
  :func:`scipy.ndimage.affine_transform`, in bounded slabs.
* ``"cubic"``: cubic B-spline through scipy (CPU; a torch input is moved to the CPU
  and back).

Interpolation: ``"nearest"`` is exact for any dtype (labels stay labels; ties round
up); ``"linear"`` is trilinear; ``"cubic"`` as above.

Arrays hold the spatial axes last, ``(I, J, K)`` or ``(C, I, J, K)``. Numpy in,
numpy out; torch in, torch out. Passing ``device=`` runs the numpy input on that
torch device and brings the result back.

Example:
    >>> import numpy as np
    >>> from brrrr.core.resample import grid_for_spacing, resample
    >>> data, affine = np.random.rand(8, 8, 8).astype("f4"), np.eye(4)
    >>> shape, target = grid_for_spacing((8, 8, 8), affine, (2.0, 2.0, 2.0))
    >>> resample(data, affine, target_shape=shape, target_affine=target).shape
    (4, 4, 4)
"""

from brrrr.core.resample._plan import AxisOp, Boundary, ResamplePlan, plan_resample
from brrrr.core.resample._resample import Interpolation, grid_for_spacing, resample
from brrrr.core.resample._slabs import SlabResampler

__all__ = [
    "AxisOp",
    "Boundary",
    "Interpolation",
    "ResamplePlan",
    "SlabResampler",
    "grid_for_spacing",
    "plan_resample",
    "resample",
]
