"""Atlas explorer: generation from the shipped models on the MNI grid, and bad model folders."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from brrrr.demos.apps import atlas
from brrrr.demos.errors import AtlasModelError

pytest.importorskip("torch")
pytest.importorskip("brrrr.models")


@pytest.fixture(scope="module")
def model() -> atlas.AtlasModel:
    return atlas.load_atlas(atlas.ASSETS)


def test_generated_map_is_on_the_mni_grid_deterministic_and_depends_on_the_latent(
    model: atlas.AtlasModel,
) -> None:
    grid, mask = atlas.mni_t1(), atlas.mni_brain_mask()
    facts = {"n_peaks": 12.0, "sample_size": 15.0}
    first = atlas.generate_map(
        model, latent=atlas.latent_vector(model, {}, seed=3), conditions=facts, grid=grid, mask=mask
    )
    again = atlas.generate_map(
        model, latent=atlas.latent_vector(model, {}, seed=3), conditions=facts, grid=grid, mask=mask
    )
    assert first.mean.shape == (91, 109, 91)
    np.testing.assert_array_equal(first.mean.affine, grid.affine)
    np.testing.assert_array_equal(first.mean.data, again.mean.data)
    assert first.aleatoric_sd is not None
    assert first.epistemic_sd is not None
    assert first.aleatoric_sd.data.min() >= 0
    assert first.epistemic_sd.data.min() >= 0
    other = atlas.generate_map(
        model,
        latent=atlas.latent_vector(model, {model.dims_by_effect[0]: 2.5}, seed=3),
        conditions=facts,
        grid=grid,
        mask=mask,
    )
    assert np.abs(other.mean.data - first.mean.data).max() > 1e-3


def test_peaks_are_seeded(model: atlas.AtlasModel) -> None:
    a = atlas.sample_peaks(model, conditions={"n_peaks": 10.0}, n_samples=2, seed=1)
    b = atlas.sample_peaks(model, conditions={"n_peaks": 10.0}, n_samples=2, seed=1)
    assert a.shape == (2, 64, 3)
    np.testing.assert_array_equal(a, b)


def test_a_model_folder_missing_a_file_is_named(tmp_path: Path) -> None:
    broken = tmp_path / "atlas"
    shutil.copytree(atlas.ASSETS, broken)
    (broken / "vae" / "model" / "template.json").unlink()
    with pytest.raises(AtlasModelError, match=r"template\.json"):
        atlas.prepare(tmp_path / "sample", model_dir=broken)
    with pytest.raises(AtlasModelError, match="no such atlas model folder"):
        atlas.load_atlas(tmp_path / "nothing")
