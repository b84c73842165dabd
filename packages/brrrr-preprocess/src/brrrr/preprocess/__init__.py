"""brrrr.preprocess: fast preprocessing on CPU and GPU.

Modules:
    prepare: NeuroVFM-style preparation (``load_image``, ``prepare_for_inference``).
    tokenize: 4×16×16 tokens with an explicit background rule, and their inverse.
    metadata, cache: a dataset's images and their content-addressed uint8 cache.
    datasets, collate, sampler: ``ImageDataset``, token collation, ``StudyAwareBatchSampler``.
    kernels: coordinate → brain-map kernels (MKDA, KDA, ALE, Gaussian) matching NiMARE.
    pointclouds: per-study peak sets as fixed-size point clouds.
    microscopy, budgeted_resample: MiniVess-layout volumes, resampling under a memory budget.
    drift: controlled drift of volumes and datasets, with a manifest.

Each module is imported on its own (``from brrrr.preprocess.kernels import MKDA``), so that
importing one does not pull in the heavy dependencies of the others.
"""

__all__: list[str] = []
