"""Tests of brrrr.models.nets.beta_vae: shapes, padding, conditioning, adversary, a few steps."""

from __future__ import annotations

import pytest
import torch

from brrrr.models import BetaVAE, BetaVAEConfig, beta_vae_loss
from brrrr.models.blocks.metadata import hold_out_metadata
from brrrr.models.errors import ModelConfigError


def test_default_config_runs_on_the_padded_mni_grid():
    config = BetaVAEConfig()
    assert config.grid_shape == (91, 109, 91)
    assert config.padded_shape == (96, 112, 96)
    assert config.bottom_shape == (6, 7, 6)


def test_shapes_on_an_odd_grid_with_aleatoric_decoder(tiny_beta_config):
    model = BetaVAE(tiny_beta_config(decoder_output="mean_logvar"))
    out = model(torch.randn(3, 1, 11, 13, 11))
    assert out.reconstruction.shape == (3, 1, 11, 13, 11)
    assert out.reconstruction_logvar is not None
    assert out.reconstruction_logvar.shape == (
        3,
        1,
        11,
        13,
        11,
    )
    assert out.mu.shape == out.logvar.shape == out.z.shape == (3, 8)
    assert out.kl.shape == (3,)
    assert bool((out.kl >= 0).all())
    assert out.metadata_prediction is None
    assert out.nuisance_prediction is None


def test_eval_mode_uses_the_mean_and_is_deterministic(tiny_beta_config):
    model = BetaVAE(tiny_beta_config()).eval()
    x = torch.randn(2, 1, 11, 13, 11)
    a, b = model(x), model(x)
    assert torch.equal(a.z, a.mu)
    assert torch.equal(a.reconstruction, b.reconstruction)
    mean, logvar = model.decode(a.mu)
    assert logvar is None
    assert torch.allclose(mean, a.reconstruction)


def test_conditioning_heads_and_missing_metadata(tiny_beta_config):
    model = BetaVAE(tiny_beta_config(metadata_dim=3, nuisance_dim=1))
    model.eval()
    x = torch.randn(2, 1, 11, 13, 11)
    mask = torch.tensor([[True, False, True], [True, True, False]])
    meta = torch.tensor([[0.1, float("nan"), 1.0], [0.3, -1.0, float("nan")]])
    out = model(x, metadata=meta, metadata_mask=mask)
    assert out.metadata_prediction is not None
    assert out.metadata_prediction.shape == (2, 3)
    assert out.nuisance_prediction is not None
    assert out.nuisance_prediction.shape == (2, 1)
    filled = torch.nan_to_num(meta, nan=123.0)
    assert torch.equal(
        model(x, metadata=filled, metadata_mask=mask).reconstruction, out.reconstruction
    )


def test_adversary_gradient_reaches_the_encoder_reversed(tiny_beta_config):
    model = BetaVAE(tiny_beta_config(nuisance_dim=1))
    x, year = torch.randn(4, 1, 11, 13, 11), torch.randn(4, 1)

    def encoder_grad(scale: float) -> torch.Tensor:
        assert model.adversary is not None
        model.adversary.reversal.scale = scale
        model.zero_grad()
        loss = beta_vae_loss(model.eval()(x), x, nuisance=year)["adversary"]
        loss.backward()
        grad = model.encoder.stem.weight.grad
        assert grad is not None
        return grad.clone()

    assert torch.allclose(encoder_grad(1.0), -encoder_grad(-1.0), atol=1e-6)


def test_three_training_steps_lower_the_loss_on_a_fixed_batch(tiny_beta_config):
    model = BetaVAE(tiny_beta_config(metadata_dim=2, nuisance_dim=1, decoder_output="mean_logvar"))
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(4, 1, 11, 13, 11)
    meta = torch.randn(4, 2)
    shown, held_out = hold_out_metadata(torch.ones(4, 2, dtype=torch.bool), rate=0.5)
    losses = []
    for _ in range(3):
        out = model(x, metadata=meta, metadata_mask=shown)
        terms = beta_vae_loss(
            out, x, beta=0.5, metadata=meta, held_out_mask=held_out, nuisance=meta[:, :1]
        )
        optimiser.zero_grad()
        terms["loss"].backward()
        optimiser.step()
        losses.append(float(terms["loss"].detach()))
    assert set(terms) >= {"loss", "reconstruction", "kl", "imputation", "adversary"}
    assert losses[-1] < losses[0]


def test_reference_maps_are_added_to_the_decoder_output_and_saved(tiny_beta_config, tmp_path):
    model = BetaVAE(tiny_beta_config(decoder_output="mean_logvar", reference_maps=True)).eval()
    z = torch.randn(2, 8)
    mean0, logvar0 = model.decode(z)
    reference = torch.rand(1, 1, 11, 13, 11)
    log_reference = torch.randn(1, 1, 11, 13, 11)
    model.set_reference(reference, logvar=log_reference)
    mean1, logvar1 = model.decode(z)
    assert logvar0 is not None
    assert logvar1 is not None
    torch.testing.assert_close(mean1, mean0 + reference)
    limit = model.config.logvar_limit
    torch.testing.assert_close(
        logvar1, limit * torch.tanh((limit * torch.atanh(logvar0 / limit) + log_reference) / limit)
    )
    model.save_pretrained(tmp_path)
    loaded = BetaVAE.from_pretrained(str(tmp_path))
    torch.testing.assert_close(loaded.decode(z)[0], mean1)


def test_set_reference_needs_reference_maps(tiny_beta_config):
    with pytest.raises(ModelConfigError, match="reference_maps"):
        BetaVAE(tiny_beta_config()).set_reference(torch.zeros(1))


def test_stopped_variance_gradient_keeps_the_outputs_and_spares_the_trunk(tiny_beta_config):
    shared = BetaVAE(tiny_beta_config(decoder_output="mean_logvar"))
    stopped = BetaVAE(tiny_beta_config(decoder_output="mean_logvar", variance_gradient="stopped"))
    stopped.load_state_dict(shared.state_dict())
    x = torch.randn(2, 1, 11, 13, 11)
    torch.manual_seed(1)
    a = shared(x)
    torch.manual_seed(1)
    b = stopped(x)
    torch.testing.assert_close(b.reconstruction, a.reconstruction)
    torch.testing.assert_close(b.reconstruction_logvar, a.reconstruction_logvar)
    assert b.reconstruction_logvar is not None
    b.reconstruction_logvar.sum().backward()
    head = stopped.decoder.head
    assert head is not None
    assert stopped.encoder.stem.weight.grad is None  # nothing reached the encoder
    assert head[-1].weight.grad is not None
    assert bool((head[-1].weight.grad[1] != 0).any())  # the log-variance filters learn
    assert bool((head[-1].weight.grad[0] == 0).all())  # the mean filters do not
