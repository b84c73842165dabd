"""The Atlas explorer's models: loading an atlas folder, generating maps and peaks.

An atlas folder holds::

    vae/model/            BetaVAE: config.json, model.safetensors, template.json
                          (the model grid), metadata.json (when conditioned)
    vae/snapshots/*/      optional snapshot-ensemble members (config.json, model.safetensors)
    pointvae/model/       optional PointVAE: config.json, model.safetensors, metadata.json

which is what ``scripts/train_atlas_vae.py`` writes under ``<out>/run`` and what
``brrrr train pointvae --output-dir DIR`` writes under ``DIR``. Everything here is numpy and
torch on the CPU; nothing is trained.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from brrrr.core.errors import MissingDependencyError
from brrrr.demos.errors import AtlasModelError

if TYPE_CHECKING:
    from brrrr.core import Volume

__all__ = [
    "AtlasModel",
    "Condition",
    "GeneratedMap",
    "generate_map",
    "latent_vector",
    "load_atlas",
    "mni_brain_mask",
    "mni_t1",
    "model_files",
    "sample_peaks",
]

# Raw values of a study fact → what the model was standardised on (as in brrrr-models).
_FORWARD = {"identity": lambda v: v, "log": math.log, "log1p": math.log1p}
_INVERSE = {"identity": lambda v: v, "log": math.exp, "log1p": math.expm1}
# The smallest raw value each transform takes (sample sizes and peak counts are counts).
_LOWEST = {"identity": -math.inf, "log": 1.0, "log1p": 0.0}
_SPREAD = 2.5  # slider range: the training mean ± 2.5 standard deviations
_PROBE = 2.0  # latent value used to measure how much the decoder responds to a dimension


@dataclass(frozen=True)
class Condition:
    """One study fact a model is conditioned on (one entry of its ``metadata.json``).

    Attributes:
        name: ``"year"``, ``"sample_size"`` or ``"n_peaks"``.
        transform: ``"identity"``, ``"log"`` or ``"log1p"`` (applied before standardising).
        mean: Training mean of the transformed value.
        std: Training standard deviation of the transformed value.
    """

    name: str
    transform: str
    mean: float
    std: float

    @property
    def observed(self) -> bool:
        """False when training saw no value (brrrr-models then saves mean 0, std 1)."""
        return not (self.mean == 0.0 and self.std == 1.0)

    def raw(self, standardised: float) -> float:
        """The raw value at ``standardised`` training standard deviations from the mean."""
        value = float(_INVERSE[self.transform](self.mean + standardised * self.std))
        return max(value, _LOWEST[self.transform])

    @property
    def default(self) -> float:
        """The raw value at the training mean (a typical study)."""
        return self.raw(0.0)

    @property
    def range(self) -> tuple[float, float]:
        """Raw ``(low, high)``: the training mean ± 2.5 standard deviations."""
        return self.raw(-_SPREAD), self.raw(_SPREAD)

    def standardise(self, value: float | None) -> float:
        """The model's input for a raw value; NaN (unknown) for ``None`` or an unseen fact."""
        if value is None or not self.observed:
            return math.nan
        value = max(float(value), _LOWEST[self.transform])
        if self.transform == "log":
            value = max(value, 1e-6)
        return (float(_FORWARD[self.transform](value)) - self.mean) / self.std


@dataclass
class AtlasModel:
    """The loaded models of an atlas folder.

    Attributes:
        folder: The atlas folder.
        vae: The map model (``BetaVAE``, eval mode).
        members: Snapshot-ensemble members, ``vae`` included when it is not one of them
            (the spread of their decoded means is the epistemic uncertainty); ``[vae]`` alone
            when the folder has no snapshots.
        grid_affine: ``(4, 4)`` voxel→world of the model's grid (``template.json``).
        conditions: Study facts the map model is conditioned on, in its input order.
        points: The ``PointVAE`` (eval mode), or ``None``.
        point_conditions: Study facts the point model is conditioned on.
        dims_by_effect: Latent dimensions sorted by how much the decoded mean changes when
            one is set to ±2 (the others at 0, facts unknown): the most used first.
    """

    folder: Path
    vae: Any
    members: list[Any]
    grid_affine: np.ndarray
    conditions: tuple[Condition, ...]
    points: Any | None
    point_conditions: tuple[Condition, ...]
    dims_by_effect: tuple[int, ...]

    @property
    def latent_dim(self) -> int:
        """Size of the map model's latent."""
        return int(self.vae.config.latent_dim)

    @property
    def grid_shape(self) -> tuple[int, int, int]:
        """Shape of the model's grid."""
        i, j, k = self.vae.config.grid_shape
        return int(i), int(j), int(k)

    @property
    def aleatoric(self) -> bool:
        """Whether the decoder predicts a per-voxel variance."""
        return bool(self.vae.config.decoder_output == "mean_logvar")


@dataclass(frozen=True)
class GeneratedMap:
    """A decoded map on the MNI grid, with its uncertainty.

    Attributes:
        mean: The decoded mean map (brain-masked), a ``Volume`` on the MNI 2 mm grid.
        aleatoric_sd: Square root of the decoder's predicted variance, or ``None``.
        epistemic_sd: Standard deviation of the ensemble members' means, or ``None`` with
            fewer than two members.
        latent: ``(L,)`` the latent that was decoded.
    """

    mean: Volume
    aleatoric_sd: Volume | None
    epistemic_sd: Volume | None
    latent: np.ndarray


def _torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise MissingDependencyError(
            f'the Atlas explorer needs torch and brrrr-models ({exc}): pip install "brrrr-models"'
        ) from None
    return torch


def _nets() -> Any:
    try:
        from brrrr.models import nets
    except ImportError as exc:
        raise MissingDependencyError(
            f'the Atlas explorer needs brrrr-models ({exc}): pip install "brrrr-models"'
        ) from None
    return nets


def _require(folder: Path, names: Sequence[str]) -> None:
    for name in names:
        path = folder / name
        if not path.is_file():
            raise AtlasModelError(f"missing file {name} of a saved model", path=path)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise AtlasModelError(f"not readable JSON ({exc})", path=path) from None


def _load_net(folder: Path, expected: str) -> Any:
    _require(folder, ("config.json", "model.safetensors"))
    config = _read_json(folder / "config.json")
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if model_type != expected:
        raise AtlasModelError(
            f"model_type is {model_type!r}, the Atlas explorer needs a {expected} here",
            path=folder / "config.json",
        )
    cls = getattr(_nets(), expected)
    try:
        model = cls.from_pretrained(str(folder))
    except Exception as exc:  # safetensors, torch and config errors all end up here
        raise AtlasModelError(
            f"cannot load the weights ({type(exc).__name__}: {exc})",
            path=folder / "model.safetensors",
        ) from None
    return model.eval()


def _conditions(folder: Path, metadata_dim: int) -> tuple[Condition, ...]:
    if metadata_dim == 0:
        return ()
    _require(folder, ("metadata.json",))
    path = folder / "metadata.json"
    stats = _read_json(path)
    try:
        names = list(stats["names"])
        conditions = tuple(
            Condition(str(n), str(stats["transforms"][n]), float(m), float(s))
            for n, m, s in zip(names, stats["mean"], stats["std"], strict=True)
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise AtlasModelError(
            f"needs names, transforms, mean and std for each fact ({type(exc).__name__}: {exc})",
            path=path,
        ) from None
    unknown = [c.transform for c in conditions if c.transform not in _FORWARD]
    if unknown:
        raise AtlasModelError(f"unknown transforms {unknown}", path=path)
    if len(conditions) != metadata_dim:
        raise AtlasModelError(
            f"{len(conditions)} facts for a model with metadata_dim={metadata_dim}", path=path
        )
    return conditions


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def model_files(folder: str | Path) -> list[Path]:
    """The files of an atlas folder the tab uses, relative to it (checked to exist).

    Raises:
        AtlasModelError: The folder, or a file a model needs, is missing (naming it).
    """
    root = Path(folder)
    if not root.is_dir():
        raise AtlasModelError("no such atlas model folder", path=root)
    vae = root / "vae" / "model"
    if not vae.is_dir():
        raise AtlasModelError(
            "no vae/model folder: an atlas folder holds vae/model/ (a trained BetaVAE), "
            "optionally vae/snapshots/*/ and pointvae/model/",
            path=root,
        )
    found = []
    wanted = ("config.json", "model.safetensors", "template.json", "metadata.json")
    _require(vae, wanted[:3])
    found += [vae / n for n in wanted if (vae / n).is_file()]
    snapshots = root / "vae" / "snapshots"
    if snapshots.is_dir():
        for member in sorted(p for p in snapshots.iterdir() if p.is_dir()):
            _require(member, wanted[:2])
            found += [member / n for n in wanted[:2]]
    points = root / "pointvae" / "model"
    if points.is_dir():
        _require(points, wanted[:2])
        found += [points / n for n in (*wanted[:2], "metadata.json") if (points / n).is_file()]
    return [p.relative_to(root) for p in found]


def load_atlas(folder: str | Path) -> AtlasModel:
    """Load the models of an atlas folder (see the module docstring for its layout).

    Raises:
        AtlasModelError: A folder or file is missing, a model is of the wrong type, its
            weights do not load, or the grid or facts do not match (naming the file).
        MissingDependencyError: brrrr-models (and torch) are not installed.
    """
    root = Path(folder)
    model_files(root)  # every needed file is there
    torch = _torch()
    vae_dir = root / "vae" / "model"
    vae = _load_net(vae_dir, "BetaVAE")
    template = _read_json(vae_dir / "template.json")
    try:
        affine = np.asarray(template["affine"], dtype=np.float64)
        shape = tuple(int(n) for n in template["shape"])
    except (KeyError, TypeError, ValueError) as exc:
        raise AtlasModelError(
            f"needs the grid's affine and shape ({type(exc).__name__}: {exc})",
            path=vae_dir / "template.json",
        ) from None
    if affine.shape != (4, 4) or shape != tuple(vae.config.grid_shape):
        raise AtlasModelError(
            f"grid {shape} with a {affine.shape} affine does not match the model's grid "
            f"{tuple(vae.config.grid_shape)}",
            path=vae_dir / "template.json",
        )
    conditions = _conditions(vae_dir, int(vae.config.metadata_dim))
    members: list[Any] = []
    own = _digest(vae_dir / "model.safetensors")
    snapshots = root / "vae" / "snapshots"
    included = False
    if snapshots.is_dir():
        for member in sorted(p for p in snapshots.iterdir() if p.is_dir()):
            if _digest(member / "model.safetensors") == own:
                members.append(vae)  # the final model is also the last snapshot
                included = True
                continue
            net = _load_net(member, "BetaVAE")
            if (
                tuple(net.config.grid_shape) != shape
                or net.config.latent_dim != vae.config.latent_dim
            ):
                raise AtlasModelError(
                    "ensemble member with another grid or latent size than vae/model",
                    path=member / "config.json",
                )
            members.append(net)
    if not included:
        members.append(vae)
    points = None
    point_conditions: tuple[Condition, ...] = ()
    points_dir = root / "pointvae" / "model"
    if points_dir.is_dir():
        points = _load_net(points_dir, "PointVAE")
        point_conditions = _conditions(points_dir, int(points.config.metadata_dim))
    with torch.no_grad():
        order = _dims_by_effect(torch, vae, conditions)
    return AtlasModel(
        folder=root,
        vae=vae,
        members=members,
        grid_affine=affine,
        conditions=conditions,
        points=points,
        point_conditions=point_conditions,
        dims_by_effect=order,
    )


def _metadata(
    torch: Any, conditions: Sequence[Condition], values: Mapping[str, float | None]
) -> Any:
    if not conditions:
        return None
    row = [c.standardise(values.get(c.name)) for c in conditions]
    return torch.tensor([row], dtype=torch.float32)


def _dims_by_effect(torch: Any, vae: Any, conditions: Sequence[Condition]) -> tuple[int, ...]:
    dim = int(vae.config.latent_dim)
    z = torch.zeros(2 * dim + 1, dim)
    for d in range(dim):
        z[2 * d, d], z[2 * d + 1, d] = _PROBE, -_PROBE
    meta = _metadata(torch, conditions, {})
    mean, _ = vae.decode(z, metadata=None if meta is None else meta.expand(len(z), -1))
    flat = mean.reshape(len(z), -1)
    effect = (flat[:-1] - flat[-1]).abs().mean(dim=1).reshape(dim, 2).sum(dim=1)
    return tuple(int(d) for d in np.argsort(-effect.numpy(), kind="stable"))


def latent_vector(
    atlas: AtlasModel, values: Mapping[int, float], *, seed: int | None = None
) -> np.ndarray:
    """The ``(L,)`` latent: ``values`` (dimension → value) set, the others 0 or drawn.

    Args:
        atlas: The atlas.
        values: Latent entries to set, by dimension.
        seed: ``None``: the other entries are 0 (the prior's mean); a number: they are drawn
            from ``N(0, 1)`` with that seed.
    """
    dim = atlas.latent_dim
    if seed is None:
        z = np.zeros(dim, dtype=np.float32)
    else:
        z = np.random.default_rng(int(seed)).standard_normal(dim).astype(np.float32)
    for d, value in values.items():
        if not 0 <= int(d) < dim:
            raise AtlasModelError(f"latent dimension {d} is outside 0..{dim - 1}")
        z[int(d)] = float(value)
    return z


def mni_t1() -> Volume:
    """NiMARE's 2 mm MNI152 T1 (91×109×91), the grid generated maps are resampled onto."""
    from brrrr.core import samples

    return samples.mni_t1(resolution_mm=2)


def mni_brain_mask() -> np.ndarray:
    """``(91, 109, 91)`` bool: NiMARE's 2 mm MNI152 brain mask (the grid of :func:`mni_t1`)."""
    from brrrr.preprocess.kernels import Template

    return np.asarray(Template.mni152(resolution_mm=2).mask, dtype=bool)


def generate_map(
    atlas: AtlasModel,
    *,
    latent: Sequence[float] | np.ndarray,
    conditions: Mapping[str, float | None],
    grid: Volume,
    mask: np.ndarray | None = None,
) -> GeneratedMap:
    """Decode one latent under study facts and resample the maps onto ``grid``.

    Args:
        atlas: The atlas.
        latent: ``(L,)`` latent.
        conditions: Raw study facts by name (``{"n_peaks": 12}``); absent or ``None``: unknown.
        grid: The target grid (e.g. :func:`mni_t1`); its shape and affine are kept.
        mask: ``grid.shape`` bool mask applied to every output (e.g. :func:`mni_brain_mask`).

    Returns:
        The :class:`GeneratedMap`; every map is float32 and the SD maps are ≥ 0.
    """
    from brrrr.core import Volume

    torch = _torch()
    z = np.asarray(latent, dtype=np.float32).reshape(-1)
    if z.shape != (atlas.latent_dim,) or not np.all(np.isfinite(z)):
        raise AtlasModelError(
            f"the latent needs {atlas.latent_dim} finite values, got shape {z.shape}",
            path=atlas.folder,
        )
    if mask is not None and tuple(mask.shape) != tuple(grid.shape):
        raise AtlasModelError(f"mask shape {mask.shape} is not the grid's {grid.shape}")
    meta = _metadata(torch, atlas.conditions, conditions)
    tensor = torch.from_numpy(z).reshape(1, -1)
    coarse: dict[str, np.ndarray] = {}
    means = []
    with torch.no_grad():
        for member in atlas.members:  # vae/model is always one of them
            mean, logvar = member.decode(tensor, metadata=meta)
            means.append(mean[0, 0].double().numpy())
            if member is atlas.vae:
                coarse["mean"] = means[-1]
                if logvar is not None:
                    coarse["aleatoric"] = logvar[0, 0].double().exp().numpy()
    if len(means) >= 2:
        coarse["epistemic"] = np.stack(means).var(axis=0)
    out: dict[str, Volume] = {}
    for name, array in coarse.items():
        fine = Volume(array.astype(np.float32), atlas.grid_affine).resample(
            like=grid, interpolation="linear", boundary="extent"
        )
        data = np.asarray(fine.data, dtype=np.float32)
        if name != "mean":
            data = np.sqrt(np.clip(data, 0.0, None))  # variance → SD
        if mask is not None:
            data = np.where(mask, data, np.float32(0.0)).astype(np.float32)
        out[name] = Volume(data, grid.affine, metadata={"map": name, "template": "MNI152"})
    return GeneratedMap(
        mean=out["mean"],
        aleatoric_sd=out.get("aleatoric"),
        epistemic_sd=out.get("epistemic"),
        latent=z,
    )


def sample_peaks(
    atlas: AtlasModel,
    *,
    conditions: Mapping[str, float | None],
    n_samples: int = 1,
    seed: int = 0,
) -> np.ndarray:
    """Peaks decoded by the point-cloud model from prior latents, under study facts.

    Args:
        atlas: The atlas (with a ``pointvae/model``).
        conditions: Raw study facts by name; absent or ``None``: unknown.
        n_samples: Point clouds to draw (each has the model's ``n_points`` peaks).
        seed: Seed of the latent draws ``z ~ N(0, I)``.

    Returns:
        ``(n_samples, n_points, 3)`` float32 coordinates in MNI mm (RAS+).

    Raises:
        AtlasModelError: The atlas has no point-cloud model, or ``n_samples`` < 1.
    """
    if atlas.points is None:
        raise AtlasModelError("this atlas folder has no pointvae/model", path=atlas.folder)
    if int(n_samples) < 1:
        raise AtlasModelError(f"n_samples must be at least 1, got {n_samples}")
    torch = _torch()
    dim = int(atlas.points.config.latent_dim)
    generator = torch.Generator().manual_seed(int(seed))
    z = torch.randn(int(n_samples), dim, generator=generator)
    meta = _metadata(torch, atlas.point_conditions, conditions)
    with torch.no_grad():
        points = atlas.points.decode(z, metadata=None if meta is None else meta.expand(len(z), -1))
    return np.asarray(points.numpy(), dtype=np.float32)
