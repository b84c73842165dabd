"""brrrr.preprocess: fast preprocessing on CPU and GPU.

Modules:
    kernels: coordinate → brain-map kernels (MKDA, KDA, ALE, Gaussian) matching NiMARE.
    pointclouds: per-study peak sets as fixed-size point clouds.
    microscopy: MiniVess-layout microscopy volumes, resampling under a memory budget.
    drift: controlled drift of volumes and datasets, with a manifest.
"""

__all__: list[str] = []
