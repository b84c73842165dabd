"""Model configurations as frozen dataclasses, and their round trip through JSON.

Configurations hold only JSON types (ints, floats, strings, tuples of them), so ``asdict``
writes them and :func:`config_from_dict` reads them back (JSON lists become tuples).

Example:
    >>> from dataclasses import asdict, dataclass
    >>> @dataclass(frozen=True)
    ... class Tiny:
    ...     channels: tuple[int, ...] = (8, 16)
    >>> config_from_dict(Tiny, {"channels": [8, 32]})
    Tiny(channels=(8, 32))
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

from brrrr.models.errors import ModelConfigError

__all__ = ["config_from_dict", "config_to_dict"]

T = TypeVar("T")


def _to_tuple(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_to_tuple(v) for v in value)
    return value


def config_from_dict(config_class: type[T], data: Mapping[str, Any]) -> T:
    """Build a configuration dataclass from a JSON mapping.

    Args:
        config_class: The dataclass to build.
        data: Field values; lists are turned into tuples.

    Returns:
        The configuration.

    Raises:
        ModelConfigError: If ``data`` names a field the class does not have (a config written
            by another model or another version), or the values fail the class's checks.
    """
    if not dataclasses.is_dataclass(config_class):
        raise TypeError(f"{config_class!r} is not a dataclass")
    names = {field.name for field in dataclasses.fields(config_class)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ModelConfigError(
            f"{config_class.__name__} has no field(s) {unknown}; the configuration was written "
            "for another model or another version of brrrr-models."
        )
    return config_class(**{key: _to_tuple(value) for key, value in data.items()})


def config_to_dict(config: Any) -> dict[str, Any]:
    """Return a configuration dataclass as a JSON-ready dict (tuples become lists).

    Args:
        config: A configuration dataclass instance.

    Returns:
        The field values.
    """
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise TypeError(f"{config!r} is not a dataclass instance")
    return {
        key: list(value) if isinstance(value, tuple) else value
        for key, value in dataclasses.asdict(config).items()
    }
