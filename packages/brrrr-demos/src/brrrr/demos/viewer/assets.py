"""The browser files the viewer ships: the NiiVue bundle, its pin and licence, our runtime.

Everything is read from ``brrrr/demos/viewer/static/`` inside the installed package, never
from a network: ``niivue.umd.js`` (the single-file UMD build of ``@niivue/niivue``, defining
``globalThis.niivue``), ``NIIVUE_LICENSE`` (BSD-2-Clause), ``niivue.json`` (the pinned version,
npm tarball integrity and SHA-256 of the bundle, written by ``scripts/fetch_niivue.py``),
``viewer.js`` (builds a viewer from a :class:`~brrrr.demos.viewer.View`'s spec) and
``widget.js`` (the anywidget front end).

Example:
    >>> from brrrr.demos.viewer.assets import niivue_bundle
    >>> bundle = niivue_bundle()
    >>> bundle.version, bundle.license
    ('0.69.0', 'BSD-2-Clause')
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from brrrr.core.files import sha256_hex
from brrrr.demos.errors import ViewerError

__all__ = ["STATIC", "NiivueBundle", "inline_script", "niivue_bundle", "static_text"]

STATIC = Path(__file__).resolve().parent / "static"
"""Folder of the shipped browser files."""

_SCRIPT_END = re.compile(r"</(script)", re.IGNORECASE)


@dataclass(frozen=True)
class NiivueBundle:
    """The NiiVue build shipped with brrrr-demos, as pinned in ``static/niivue.json``.

    Attributes:
        version: ``@niivue/niivue`` npm version.
        path: The bundle file (``niivue.umd.js``).
        sha256: Hex SHA-256 the bundle must have.
        tarball_integrity: The npm tarball's ``dist.integrity`` (``sha512-…``) it came from.
        license: SPDX licence of NiiVue.
        license_path: The licence text shipped beside the bundle.
        colormaps: Names of NiiVue's built-in colormaps.
    """

    version: str
    path: Path
    sha256: str
    tarball_integrity: str
    license: str
    license_path: Path
    colormaps: tuple[str, ...]

    def verify(self) -> None:
        """Check the bundle's SHA-256 against the pin.

        Raises:
            ViewerError: The file differs from the pinned build (re-run ``fetch_niivue.py``).
        """
        actual = sha256_hex(self.path)
        if actual != self.sha256:
            raise ViewerError(
                f"NiiVue bundle has SHA-256 {actual}, but niivue.json pins {self.sha256}: "
                "the file was changed; restore it or re-run scripts/fetch_niivue.py",
                path=self.path,
            )


@cache
def niivue_bundle() -> NiivueBundle:
    """The shipped NiiVue build (read once).

    Raises:
        ViewerError: ``niivue.json`` or the files it names are missing from the install.
    """
    pin_path = STATIC / "niivue.json"
    try:
        pin = json.loads(pin_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ViewerError(
            f"cannot read the NiiVue pin ({exc}): the brrrr-demos install is incomplete",
            path=pin_path,
        ) from None
    bundle = NiivueBundle(
        version=str(pin["version"]),
        path=STATIC / pin["file"],
        sha256=str(pin["sha256"]),
        tarball_integrity=str(pin["tarball_integrity"]),
        license=str(pin["license"]),
        license_path=STATIC / pin["license_file"],
        colormaps=tuple(pin["colormaps"]),
    )
    for path in (bundle.path, bundle.license_path):
        if not path.is_file():
            raise ViewerError("missing from the brrrr-demos install: reinstall it", path=path)
    return bundle


@cache
def static_text(name: str) -> str:
    """The text of one shipped file, e.g. ``"niivue.umd.js"`` or ``"viewer.js"`` (read once).

    Raises:
        ViewerError: No such file in the install.
    """
    path = STATIC / name
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ViewerError(
            f"cannot read a viewer file ({exc.strerror or exc}): reinstall brrrr-demos", path=path
        ) from None


def inline_script(code: str) -> str:
    """``code`` made safe to place between ``<script>`` and ``</script>`` in an HTML page.

    ``</script`` would end the element early; ``<\\/script`` means the same inside the JS
    strings and regular expressions where it can appear.
    """
    return _SCRIPT_END.sub(r"<\\/\1", code).replace("<!--", "<\\!--")
