"""Save and load models as ``model.safetensors`` + ``config.json``, in a folder or on the Hub.

Every network in :mod:`brrrr.models.nets` mixes in :class:`HubMixin` (built on
``huggingface_hub.ModelHubMixin``), which gives it:

* ``model.save_pretrained(folder)`` — writes ``model.safetensors`` (the state dict, buffers
  included), ``config.json`` (the configuration dataclass plus ``model_type`` and
  ``format_version``) and a model card ``README.md``; ``push_to_hub=True, repo_id=...`` uploads.
* ``Model.from_pretrained(folder_or_repo_id)`` — rebuilds the model from ``config.json`` and
  loads the weights *strictly* (a missing or unexpected tensor is an error), in eval mode.

Example:
    >>> import tempfile
    >>> from brrrr.models import PointVAE, PointVAEConfig
    >>> model = PointVAE(PointVAEConfig(n_points=16, latent_dim=4))
    >>> folder = tempfile.mkdtemp()
    >>> _ = model.save_pretrained(folder)
    >>> PointVAE.from_pretrained(folder).config == model.config
    True
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from huggingface_hub import ModelHubMixin, constants, hf_hub_download

from brrrr.models.config import config_from_dict, config_to_dict
from brrrr.models.errors import ModelConfigError

__all__ = ["FORMAT_VERSION", "HubMixin"]

FORMAT_VERSION = 1

T = TypeVar("T", bound="HubMixin")


class HubMixin(
    ModelHubMixin,
    library_name="brrrr-models",
    tags=["neuroimaging", "brrrr"],
):
    """Safetensors + JSON config persistence for ``nn.Module`` subclasses with a ``config``.

    Subclasses set :attr:`config_class` and take their configuration as the first argument.
    """

    config_class: ClassVar[type[Any]]
    config: Any

    def _save_pretrained(self, save_directory: Path) -> None:
        from safetensors.torch import save_model

        save_model(self, str(save_directory / constants.SAFETENSORS_SINGLE_FILE))  # type: ignore[arg-type]
        header = {"model_type": type(self).__name__, "format_version": FORMAT_VERSION}
        (save_directory / constants.CONFIG_NAME).write_text(
            json.dumps({**header, **config_to_dict(self.config)}, indent=2, sort_keys=True)
        )

    @classmethod
    def _from_pretrained(
        cls: type[T],
        *,
        model_id: str,
        revision: str | None,
        cache_dir: str | Path | None,
        force_download: bool,
        local_files_only: bool,
        token: str | bool | None,
        config: dict[str, Any] | None = None,
        map_location: str = "cpu",
        **model_kwargs: Any,
    ) -> T:
        from safetensors.torch import load_model

        if config is None:
            raise ModelConfigError(
                f"no {constants.CONFIG_NAME} found; save the model with save_pretrained()",
                path=model_id,
            )
        fields = dict(config)
        model_type = fields.pop("model_type", cls.__name__)
        version = fields.pop("format_version", FORMAT_VERSION)
        if model_type != cls.__name__:
            raise ModelConfigError(
                f"holds a {model_type}; load it with {model_type}.from_pretrained()", path=model_id
            )
        if version > FORMAT_VERSION:
            raise ModelConfigError(
                f"format version {version} is newer than this brrrr-models ({FORMAT_VERSION}); "
                "upgrade brrrr-models",
                path=model_id,
            )
        model = cls(config_from_dict(cls.config_class, fields), **model_kwargs)
        if os.path.isdir(model_id):
            weights = os.path.join(model_id, constants.SAFETENSORS_SINGLE_FILE)
        else:
            weights = hf_hub_download(
                repo_id=model_id,
                filename=constants.SAFETENSORS_SINGLE_FILE,
                revision=revision,
                cache_dir=cache_dir,
                force_download=force_download,
                token=token,
                local_files_only=local_files_only,
            )
        load_model(model, weights, strict=True, device=map_location)  # type: ignore[arg-type]
        model.eval()  # type: ignore[attr-defined]
        return model
