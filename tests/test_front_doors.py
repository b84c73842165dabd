"""Each package's front door names its public API, resolves every name on first use, and
imports none of the heavy libraries by itself."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys

import pytest

FRONT_DOORS = ["brrrr.core", "brrrr.core.io", "brrrr.ingest", "brrrr.preprocess", "brrrr.models"]


@pytest.mark.parametrize("name", FRONT_DOORS)
def test_every_public_name_resolves_to_its_package(name: str) -> None:
    module = importlib.import_module(name)
    package = name.split(".")[1]
    for public in module.__all__:
        value = getattr(module, public)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert value.__module__.startswith(f"brrrr.{package}"), (public, value.__module__)
    assert set(module.__all__) <= set(dir(module))
    with pytest.raises(AttributeError):
        _ = module.no_such_name


@pytest.mark.parametrize("name", FRONT_DOORS)
def test_importing_a_front_door_imports_no_heavy_library(name: str) -> None:
    code = (
        f"import sys, {name}; "
        "heavy = [m for m in ('torch', 'nibabel', 'pydicom', 'numba', 'datasets', 'bids', "
        "'monai', 'lightning', 'scipy') if m in sys.modules]; print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"importing {name} imported {out.stdout.strip()}"
