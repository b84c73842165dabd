"""Tests of brrrr.models.config: JSON round trip and refusal of foreign fields."""

from __future__ import annotations

import json

import pytest

from brrrr.models import BetaVAEConfig, PointVAEConfig
from brrrr.models.config import config_from_dict, config_to_dict
from brrrr.models.errors import ModelConfigError


def test_round_trip_through_json_restores_tuples():
    config = PointVAEConfig(
        centroids=(8, 4), radii=(0.1, 0.2), neighbors=(4, 4), sa_channels=(8, 8)
    )
    data = json.loads(json.dumps(config_to_dict(config)))
    assert config_from_dict(PointVAEConfig, data) == config


def test_unknown_field_is_an_error_naming_it():
    with pytest.raises(ModelConfigError, match="n_points"):
        config_from_dict(BetaVAEConfig, {"n_points": 3})


def test_inconsistent_config_is_refused():
    with pytest.raises(ModelConfigError, match="divisible"):
        BetaVAEConfig(channels=(8, 12), dilations=(1,))
    with pytest.raises(ModelConfigError, match="dilations"):
        BetaVAEConfig(channels=(8, 16), dilations=(1, 2))
