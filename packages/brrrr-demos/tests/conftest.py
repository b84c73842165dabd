"""Shared test data (a small lesion phantom) and the headless-Chromium fixtures."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from brrrr.core import Volume, samples
from brrrr.demos import testing

DOCS_IMAGES = Path(__file__).resolve().parents[3] / "docs" / "images"


@pytest.fixture(scope="session")
def phantom() -> tuple[Volume, Volume]:
    """A 64×76×64 head at 3 mm (RAS) and its lesion mask (uint8)."""
    return samples.lesion_phantom(shape=(64, 76, 64), spacing=3.0)


@pytest.fixture(scope="session")
def lesion_mm() -> tuple[float, float, float]:
    """Where the phantom's lesion is centred, in world RAS+ mm (the left hemisphere)."""
    return (-30.0, 12.0, 16.0)


@pytest.fixture
def chromium() -> str:
    """The Chromium executable; the test is skipped when there is none."""
    found = testing.find_chromium()
    if found is None:
        pytest.skip("headless Chromium is not installed (apt-get install -y chromium)")
    return found


@pytest.fixture
def keep_screenshot() -> Callable[[testing.Capture, str], None]:
    """Copy a screenshot to docs/images/NAME.png, only when BRRRR_UPDATE_SCREENSHOTS=1."""

    def keep(shot: testing.Capture, name: str) -> None:
        if os.environ.get("BRRRR_UPDATE_SCREENSHOTS") == "1":
            DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(shot.screenshot, DOCS_IMAGES / f"{name}.png")

    return keep
