"""Tests of brrrr.models.blocks.metadata: missing values are masked, held-out entries are disjoint."""

from __future__ import annotations

import torch

from brrrr.models.blocks.metadata import MetadataEncoder, MetadataImputationHead, hold_out_metadata


def test_missing_values_do_not_matter_whatever_they_hold():
    encoder = MetadataEncoder(3, embedding_dim=8)
    mask = torch.tensor([[True, False, True]])
    a = encoder(torch.tensor([[0.3, float("nan"), -1.0]]), mask)
    b = encoder(torch.tensor([[0.3, 1e6, -1.0]]), mask)
    assert torch.isfinite(a).all()
    assert torch.equal(a, b)
    # Without a mask, non-finite entries count as missing.
    assert torch.equal(encoder(torch.tensor([[0.3, float("nan"), -1.0]])), a)


def test_missing_is_not_the_same_as_zero():
    encoder = MetadataEncoder(2, embedding_dim=8)
    values = torch.zeros(1, 2)
    seen = encoder(values, torch.tensor([[True, True]]))
    missing = encoder(values, torch.tensor([[True, False]]))
    assert not torch.allclose(seen, missing)


def test_imputation_head_shape():
    assert MetadataImputationHead(10, metadata_dim=3)(torch.randn(4, 10)).shape == (4, 3)


def test_hold_out_splits_the_observed_entries():
    observed = torch.rand(64, 5) < 0.7
    shown, held_out = hold_out_metadata(
        observed, rate=0.3, generator=torch.Generator().manual_seed(1)
    )
    assert torch.equal(shown | held_out, observed)
    assert not (shown & held_out).any()
    share = float(held_out.sum() / observed.sum())
    assert 0.2 < share < 0.4
