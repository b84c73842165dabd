"""Tests of brrrr.models.pointnet.set_abstraction: shapes, masks, centroids are real points."""

from __future__ import annotations

import torch

from brrrr.models.pointnet.set_abstraction import GlobalSetAbstraction, SetAbstraction


def test_local_abstraction_shapes_and_centroids_come_from_real_points():
    layer = SetAbstraction(4, n_centroids=6, radius=0.5, n_neighbors=5, mlp_channels=(8, 16))
    xyz = torch.rand(2, 20, 3)
    mask = torch.ones(2, 20, dtype=torch.bool)
    mask[:, 12:] = False
    centroids, features = layer(xyz, torch.randn(2, 20, 4), mask)
    assert centroids.shape == (2, 6, 3)
    assert features.shape == (2, 6, 16)
    for b in range(2):
        real = {tuple(p.tolist()) for p in xyz[b, :12]}
        assert all(tuple(c.tolist()) in real for c in centroids[b])


def test_padded_points_do_not_change_the_output():
    layer = SetAbstraction(0, n_centroids=4, radius=0.4, n_neighbors=4, mlp_channels=(8,))
    pool = GlobalSetAbstraction(8, mlp_channels=(8,))
    xyz = torch.rand(1, 12, 3)
    mask = torch.ones(1, 12, dtype=torch.bool)
    mask[:, 8:] = False
    moved = xyz.clone()
    moved[:, 8:] = 5.0
    a = pool(*layer(xyz, None, mask))
    b = pool(*layer(moved, None, mask))
    assert torch.equal(a, b)


def test_global_pool_ignores_masked_points():
    pool = GlobalSetAbstraction(2, mlp_channels=(8,))
    xyz, feats = torch.rand(1, 5, 3), torch.randn(1, 5, 2)
    mask = torch.tensor([[True, True, True, False, False]])
    assert torch.equal(pool(xyz, feats, mask), pool(xyz[:, :3], feats[:, :3]))
