"""NeuroVFM-style preparation of head MRI and CT, and what feeds it to a model.

Modules:
    prepare: ``load_image``, ``prepare_for_inference``, ``load_and_prepare``, ``prepare_array``.
    settings: ``PrepareSettings``, ``View``, the CT windows and the slice-axis rule.
    tokenize: 4×16×16 tokens with an explicit background rule, and their inverse.
    metadata, cache: a dataset's images and their content-addressed uint8 cache.
    datasets, collate, sampler: ``ImageDataset``, token collation, ``StudyAwareBatchSampler``.

The public names are importable from :mod:`brrrr.preprocess`.
"""

__all__: list[str] = []
