"""Small synthetic peak tables and grids, for tests, examples and benchmarks.

:func:`synthetic_peaks` draws studies from a few "networks" (sets of 3 MNI centres); each
analysis reports jittered peaks around the centres of one network, so the maps have structure a
VAE can learn, and several analyses share a study (as in real coordinate databases).

Example:
    >>> peaks, groups = synthetic_peaks(n_studies=4, analyses_per_study=2, seed=0)
    >>> peaks.n_studies, len(set(groups))
    (8, 4)
"""

from __future__ import annotations

import numpy as np

from brrrr.preprocess.kernels import PeakTable, Template

__all__ = ["synthetic_peaks", "toy_template"]

_NETWORKS = np.array(
    [
        [[-40.0, -20, 50], [40, -20, 50], [0, -10, 60]],  # motor
        [[-44.0, 30, 20], [44, 30, 20], [0, 20, 40]],  # fronto-parietal / ACC
        [[-30.0, -80, 10], [30, -80, 10], [0, -90, 0]],  # visual
        [[-45.0, -60, 30], [0, 50, 0], [45, -60, 30]],  # default mode
    ]
)


def toy_template(
    shape: tuple[int, int, int] = (12, 14, 12), *, spacing_mm: float = 14.0
) -> Template:
    """A coarse RAS+ grid centred on MNI (0, -18, 18) mm, unmasked.

    Args:
        shape: Grid shape.
        spacing_mm: Isotropic voxel size; the default 12×14×12 grid at 14 mm spans the brain.
    """
    affine = np.diag([spacing_mm, spacing_mm, spacing_mm, 1.0])
    centre = np.array([0.0, -18.0, 18.0])
    affine[:3, 3] = centre - spacing_mm * (np.asarray(shape) - 1) / 2
    return Template(affine, shape, name="toy")


def synthetic_peaks(
    *,
    n_studies: int = 12,
    analyses_per_study: int = 2,
    jitter_mm: float = 6.0,
    seed: int = 0,
) -> tuple[PeakTable, np.ndarray]:
    """Studies whose analyses report peaks around one of four networks.

    Args:
        n_studies: Studies.
        analyses_per_study: Analyses (rows) per study.
        jitter_mm: Standard deviation of the peaks around the network centres.
        seed: Seed.

    Returns:
        ``(peaks, groups)``: one row per analysis (ids ``sXX-aY``), and the study of each row.
        Years and sample sizes are known for every other study.
    """
    rng = np.random.default_rng(seed)
    labels, coords, years, sizes = [], [], {}, {}
    for s in range(n_studies):
        network = _NETWORKS[s % len(_NETWORKS)]
        for a in range(analyses_per_study):
            name = f"s{s:02d}-a{a}"
            for centre in network:
                for _ in range(int(rng.integers(1, 3))):
                    labels.append(name)
                    coords.append(centre + rng.normal(0.0, jitter_mm, 3))
            if s % 2 == 0:
                years[name] = 2000.0 + s
                sizes[name] = 15.0 + 3 * s
    peaks = PeakTable.from_peaks(labels, np.asarray(coords), years=years, sample_sizes=sizes)
    groups = np.array([str(i).split("-")[0] for i in peaks.study_ids], dtype=object)
    return peaks, groups
