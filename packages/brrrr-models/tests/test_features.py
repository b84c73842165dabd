"""PCA features against numpy's SVD; the brain mask decides which voxels count."""

from __future__ import annotations

import numpy as np
import torch

from brrrr.models.evaluation import PCAFeatures


def _maps(n: int = 40, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 4, 5, 3, generator=generator, dtype=torch.float64)


def test_coordinates_match_numpy_svd_up_to_sign() -> None:
    maps = _maps()
    mask = torch.zeros(1, 1, 4, 5, 3)
    mask[..., 1:3, :] = 1
    features = PCAFeatures.fit(maps, n_components=5, mask=mask)
    data = maps.numpy().reshape(len(maps), -1)[:, mask.numpy().reshape(-1) > 0]
    centred = data - data.mean(axis=0)
    _, _, vh = np.linalg.svd(centred, full_matrices=False)
    queries = _maps(7, seed=1)
    expected = (
        queries.numpy().reshape(7, -1)[:, mask.numpy().reshape(-1) > 0] - data.mean(0)
    ) @ vh[:5].T
    got = features(queries).numpy()
    signs = np.sign((got * expected).sum(axis=0))
    np.testing.assert_allclose(got * signs, expected, atol=1e-10)
    assert features.dim == 5
    np.testing.assert_allclose(features.components @ features.components.T, np.eye(5), atol=1e-10)


def test_voxels_outside_the_mask_do_not_count() -> None:
    maps = _maps()
    mask = torch.zeros(4, 5, 3)
    mask[0] = 1
    features = PCAFeatures.fit(maps, n_components=3, mask=mask)
    changed = maps.clone()
    changed[:, :, 1:] = 100.0
    torch.testing.assert_close(features(changed), features(maps))
