"""Coordinates → brain maps: MKDA, KDA, ALE and Gaussian kernels that match NiMARE.

Peaks (MNI mm) of many studies become one map each on a template grid, in batches, in torch
on CPU or CUDA. MKDA, KDA and ALE maps equal NiMARE's ``MKDAKernel``, ``KDAKernel`` and
``ALEKernel`` (``transform(..., return_type="array")``) to the bit on NiMARE's own data.

Example:
    >>> from brrrr.preprocess.kernels import MKDA, PeakTable, Template, peaks_to_maps
    >>> tpl = Template.mni152(mask="brain")  # doctest: +SKIP
    >>> peaks = PeakTable.from_peaks(["s1", "s1"], [[-40.0, -20, 50], [40, -20, 50]])
    >>> maps = peaks_to_maps(peaks, kernel=MKDA(radius_mm=10), template=tpl)  # doctest: +SKIP
    >>> maps.shape  # doctest: +SKIP
    torch.Size([1, 228483])
"""

from brrrr.preprocess.kernels._apply import MapBatch, iter_maps, peaks_to_maps
from brrrr.preprocess.kernels._cache import CachedMaps, MapCache
from brrrr.preprocess.kernels._peaks import DedupReport, PeakTable, deduplicate_peaks
from brrrr.preprocess.kernels._specs import (
    ALE,
    KDA,
    MKDA,
    Gaussian,
    Kernel,
    Stencil,
    ale_fwhm_mm,
    ale_stencil,
    gaussian_stencil,
    sphere_offsets,
)
from brrrr.preprocess.kernels._template import Template

__all__ = [
    "ALE",
    "KDA",
    "MKDA",
    "CachedMaps",
    "DedupReport",
    "Gaussian",
    "Kernel",
    "MapBatch",
    "MapCache",
    "PeakTable",
    "Stencil",
    "Template",
    "ale_fwhm_mm",
    "ale_stencil",
    "deduplicate_peaks",
    "gaussian_stencil",
    "iter_maps",
    "peaks_to_maps",
    "sphere_offsets",
]
