"""Reconstruction error against hand values and numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from brrrr.models.evaluation import reconstruction_error


def test_by_hand_and_against_numpy() -> None:
    target = torch.tensor([[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 1.0, 1.0]])
    prediction = torch.tensor([[1.0, 2.0, 3.0, 8.0], [0.0, 1.0, 1.0, 1.0]])
    errors = reconstruction_error(prediction, target)
    assert errors["mse"].tolist() == [4.0, 0.25]
    assert errors["mae"].tolist() == [1.0, 0.25]
    for row in range(2):
        expected = np.corrcoef(prediction[row].numpy(), target[row].numpy())[0, 1]
        assert float(errors["correlation"][row]) == pytest.approx(expected)


def test_mask_restricts_the_voxels() -> None:
    target = torch.zeros(1, 1, 2, 2, 2)
    prediction = torch.zeros(1, 1, 2, 2, 2)
    prediction[0, 0, 1] = 3.0  # errors only outside the mask
    mask = torch.zeros(1, 1, 2, 2, 2)
    mask[0, 0, 0] = 1
    errors = reconstruction_error(prediction, target, mask=mask)
    assert float(errors["mse"][0]) == 0.0
    assert float(reconstruction_error(prediction, target)["mse"][0]) == 4.5
    assert torch.isnan(errors["correlation"][0])  # constant maps have no correlation
    with pytest.raises(ValueError, match="shapes differ"):
        reconstruction_error(prediction, target[..., :1])
