"""Tests of brrrr.preprocess.neurovfm.tokenize: exact inverse, the background rule, coords, numpy == torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from brrrr.preprocess.errors import TokenizeError
from brrrr.preprocess.neurovfm.tokenize import background_threshold, tokenize, untokenize

PATCH = (4, 16, 16)


@pytest.fixture
def volume() -> np.ndarray:
    return np.random.default_rng(0).random((8, 32, 48), dtype=np.float32)


def neurovfm_filtered(mask: np.ndarray, patch: tuple[int, int, int] = PATCH) -> np.ndarray:
    """NeuroVFM's rule written out: background if any voxel of the patch is background."""
    p1, p2, p3 = patch
    d, h, w = (n // p for n, p in zip(mask.shape, patch, strict=True))
    blocks = mask.reshape(d, p1, h, p2, w, p3).transpose(0, 2, 4, 1, 3, 5).reshape(d * h * w, -1)
    return np.asarray(~blocks.all(axis=1), dtype=np.uint8)


@pytest.mark.parametrize("shape", [(8, 32, 48), (3, 8, 32, 48), (2, 3, 8, 32, 48)])
def test_untokenize_inverts_tokenize(shape: tuple[int, ...]) -> None:
    x = np.random.default_rng(1).random(shape, dtype=np.float32)
    out = tokenize(x, None)
    channels = 1 if len(shape) == 3 else shape[-4]
    assert out.tokens.shape == (*shape[:-4], 2 * 2 * 3, channels * 1024)
    assert np.array_equal(untokenize(out.tokens, out.coords, out.size), x)
    tout = tokenize(torch.from_numpy(x), None)
    assert torch.equal(untokenize(tout.tokens, tout.coords, tout.size), torch.from_numpy(x))


def test_coords_and_token_contents(volume: np.ndarray) -> None:
    out = tokenize(volume, volume > 0.5)
    assert out.size.tolist() == [2, 2, 3]
    assert out.size.dtype == np.int64
    assert out.coords.dtype == np.int64
    assert out.filtered.dtype == np.uint8
    # w fastest, then h, then d (NeuroVFM's "(d h w)").
    assert out.coords[:4].tolist() == [[0, 0, 0], [0, 0, 1], [0, 0, 2], [0, 1, 0]]
    for n, (d, h, w) in enumerate(out.coords):
        patch = volume[4 * d : 4 * d + 4, 16 * h : 16 * h + 16, 16 * w : 16 * w + 16]
        assert np.array_equal(out.tokens[n], patch.ravel())


def test_channels_are_outermost_within_a_token() -> None:
    x = np.random.default_rng(2).random((3, 4, 16, 16), dtype=np.float32)
    tokens = tokenize(x, None).tokens
    assert np.array_equal(tokens[0].reshape(3, 4, 16, 16), x)


def test_background_rule_semantics() -> None:
    mask = np.ones((4, 16, 64), dtype=bool)
    mask[0, 0, 16] = False  # token 1: one background voxel
    mask[:2, :, 32:48] = False  # token 2: half background
    mask[:, :, 48:] = False  # token 3: all background
    assert tokenize(mask.astype("f4"), mask).filtered.tolist() == [0, 0, 0, 1]
    assert tokenize(mask.astype("f4"), mask, background_rule=1.0).filtered.tolist() == [0, 0, 0, 1]
    assert tokenize(mask.astype("f4"), mask, background_rule=0.5).filtered.tolist() == [0, 0, 1, 1]
    assert tokenize(mask.astype("f4"), mask, background_rule=0.51).filtered.tolist() == [0, 0, 0, 1]
    anyrule = tokenize(mask.astype("f4"), mask, background_rule="any")
    assert anyrule.filtered.tolist() == [0, 1, 1, 1]
    assert np.array_equal(anyrule.filtered, neurovfm_filtered(mask))
    tiny = tokenize(mask.astype("f4"), mask, background_rule=1e-9)
    assert np.array_equal(tiny.filtered, anyrule.filtered)
    assert anyrule.kept_fraction == 0.25


def test_any_rule_equals_neurovfm_on_random_masks(volume: np.ndarray) -> None:
    mask = volume > 0.02
    assert np.array_equal(
        tokenize(volume, mask, background_rule="any").filtered, neurovfm_filtered(mask)
    )


def test_uint8_mask_and_drop(volume: np.ndarray) -> None:
    mask = np.zeros(volume.shape, dtype=np.uint8)
    mask[:, :16, :] = 1
    marked = tokenize(volume, mask)
    assert marked.filtered.tolist() == [0, 0, 0, 1, 1, 1] * 2
    dropped = tokenize(volume, mask, background="drop")
    assert dropped.tokens.shape == (6, 1024)
    assert not dropped.filtered.any()
    assert dropped.kept_fraction == marked.kept_fraction == 0.5
    restored = untokenize(dropped.tokens, dropped.coords, dropped.size, fill=-1.0)
    assert np.array_equal(restored[:, :16], volume[:, :16])
    assert (restored[:, 16:] == -1.0).all()


def test_torch_equals_numpy(volume: np.ndarray) -> None:
    batch = np.stack([volume, volume[::-1].copy()])[:, None]
    masks = batch[:, 0] > 0.3
    expected = tokenize(batch, masks, background_rule=0.25)
    got = tokenize(torch.from_numpy(batch), torch.from_numpy(masks), background_rule=0.25)
    for a, b in zip(expected, got, strict=True):
        assert np.array_equal(a, b.numpy())
    np.testing.assert_allclose(expected.kept_fraction, got.kept_fraction.numpy())
    single = tokenize(volume, masks[0], background_rule=0.25)
    assert np.array_equal(single.filtered, expected.filtered[0])
    assert single.kept_fraction == pytest.approx(float(expected.kept_fraction[0]))


def test_background_threshold() -> None:
    assert background_threshold("all", 1024) == 1024
    assert background_threshold("any", 1024) == 1
    assert background_threshold(0.5, 1024) == 512
    assert background_threshold(0.3, 10) == 3
    assert background_threshold(1e-12, 1024) == 1
    for bad in (0.0, 1.5, -0.1, "most"):
        with pytest.raises(TokenizeError, match="background_rule"):
            background_threshold(bad, 1024)  # type: ignore[arg-type]


def test_errors(volume: np.ndarray) -> None:
    with pytest.raises(TokenizeError, match="not divisible"):
        tokenize(volume[:6], None)
    with pytest.raises(TokenizeError, match="mask shape"):
        tokenize(volume, volume[:4] > 0)
    with pytest.raises(TokenizeError, match="ragged"):
        tokenize(volume[None, None].repeat(2, axis=0), None, background="drop")
    with pytest.raises(TokenizeError, match="multiple"):
        untokenize(np.zeros((2, 100), "f4"), np.zeros((2, 3), int), np.array([1, 1, 2]))


@pytest.mark.parametrize("patch", [(4, 16, 16), (2, 4, 6), (1, 8, 8)])
def test_background_counts_equal_brute_force(patch: tuple[int, int, int]) -> None:
    rng = np.random.default_rng(3)
    shape = (4 * patch[0], 2 * patch[1], 3 * patch[2])
    mask = rng.random(shape) > rng.random()  # one random density for the whole volume
    mask[: patch[0]] = rng.random(mask[: patch[0]].shape) > 0.97  # and a sparse slab
    p1, p2, p3 = patch
    blocks = mask.reshape(4, p1, 2, p2, 3, p3).transpose(0, 2, 4, 1, 3, 5).reshape(24, -1)
    background = (~blocks).sum(axis=1)
    for rule in (0.3, 0.9, "all", "any"):
        need = background_threshold(rule, p1 * p2 * p3)
        expected = (background >= need).astype(np.uint8)
        x = mask.astype(np.float32)
        assert np.array_equal(
            tokenize(x, mask, patch=patch, background_rule=rule).filtered, expected
        )
        got = tokenize(
            torch.from_numpy(x), torch.from_numpy(mask), patch=patch, background_rule=rule
        )
        assert np.array_equal(got.filtered.numpy(), expected)
