"""Fetch the NiiVue browser bundle into brrrr-demos, verified, for offline use.

The viewer never loads NiiVue from a CDN: the single-file UMD build of the npm package
``@niivue/niivue`` (``dist/niivue.umd.js``, no bundler needed, defines ``globalThis.niivue``)
is committed under ``src/brrrr/demos/viewer/static/`` and shipped in the wheel. This script
updates it:

1. asks the npm registry for the version's recorded ``dist.integrity`` (``npm view``);
2. downloads the tarball with ``npm pack`` and checks its SHA-512 against that record;
3. copies ``package/dist/niivue.umd.js`` and the licence into ``static/``;
4. writes ``static/niivue.json``: the pinned version, the tarball integrity, the SHA-256 and
   size of the bundle, the licences of the packages the bundle includes, and the names of
   NiiVue's built-in colormaps (which ``brrrr.demos.viewer.Layer`` accepts).

The tests check the shipped bundle against the SHA-256 in ``niivue.json``.

Usage (needs ``npm`` and the npm registry)::

    python packages/brrrr-demos/scripts/fetch_niivue.py              # re-fetch the pinned version
    python packages/brrrr-demos/scripts/fetch_niivue.py --version latest
    python packages/brrrr-demos/scripts/fetch_niivue.py --version 0.69.0 --check
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

PACKAGE = "@niivue/niivue"
BUNDLE_MEMBER = "package/dist/niivue.umd.js"
STATIC = Path(__file__).resolve().parents[1] / "src" / "brrrr" / "demos" / "viewer" / "static"
BUNDLE = "niivue.umd.js"
LICENSE = "NIIVUE_LICENSE"
PIN = "niivue.json"

# The npm tarball carries no LICENSE file (checked for 0.69.0); package.json declares
# BSD-2-Clause, whose terms require this notice to travel with every redistribution.
# The copyright line is the one in the NiiVue repository's LICENSE.
_BSD_2_CLAUSE = """\
BSD 2-Clause License

Copyright (c) 2021, Niivue
All rights reserved.

Redistribution and use in source and binary forms, with or without
modification, are permitted provided that the following conditions are met:

1. Redistributions of source code must retain the above copyright notice, this
   list of conditions and the following disclaimer.

2. Redistributions in binary form must reproduce the above copyright notice,
   this list of conditions and the following disclaimer in the documentation
   and/or other materials provided with the distribution.

THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS IS"
AND ANY EXPRESS OR IMPLIED WARRANTIES, INCLUDING, BUT NOT LIMITED TO, THE
IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS FOR A PARTICULAR PURPOSE ARE
DISCLAIMED. IN NO EVENT SHALL THE COPYRIGHT HOLDER OR CONTRIBUTORS BE LIABLE
FOR ANY DIRECT, INDIRECT, INCIDENTAL, SPECIAL, EXEMPLARY, OR CONSEQUENTIAL
DAMAGES (INCLUDING, BUT NOT LIMITED TO, PROCUREMENT OF SUBSTITUTE GOODS OR
SERVICES; LOSS OF USE, DATA, OR PROFITS; OR BUSINESS INTERRUPTION) HOWEVER
CAUSED AND ON ANY THEORY OF LIABILITY, WHETHER IN CONTRACT, STRICT LIABILITY,
OR TORT (INCLUDING NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY OUT OF THE USE
OF THIS SOFTWARE, EVEN IF ADVISED OF THE POSSIBILITY OF SUCH DAMAGE.
"""


def _npm(*args: str, cwd: Path | None = None) -> Any:
    """Run ``npm ARGS --json`` and return its parsed output."""
    try:
        done = subprocess.run(
            ["npm", *args, "--json"], cwd=cwd, check=True, capture_output=True, text=True
        )
    except FileNotFoundError:
        sys.exit("fetch_niivue: npm is not installed (apt-get install -y npm)")
    except subprocess.CalledProcessError as exc:
        sys.exit(f"fetch_niivue: npm {' '.join(args)} failed:\n{exc.stderr}")
    return json.loads(done.stdout)


def _pinned_version() -> str:
    path = STATIC / PIN
    if not path.is_file():
        sys.exit(f"fetch_niivue: {path} is missing: pass --version")
    return str(json.loads(path.read_text())["version"])


def _check_integrity(tarball: Path, integrity: str) -> None:
    algorithm, _, expected = integrity.partition("-")
    if algorithm != "sha512":
        sys.exit(f"fetch_niivue: unexpected integrity algorithm {algorithm!r} in {integrity!r}")
    actual = base64.b64encode(hashlib.sha512(tarball.read_bytes()).digest()).decode()
    if actual != expected:
        sys.exit(
            f"fetch_niivue: {tarball.name}: SHA-512 {actual} does not match the registry's "
            f"recorded integrity {expected}: the download is corrupt or was tampered with"
        )


def _read_member(archive: tarfile.TarFile, name: str) -> bytes | None:
    try:
        member = archive.getmember(name)
    except KeyError:
        return None
    handle = archive.extractfile(member)
    return None if handle is None else handle.read()


def _licence_text(archive: tarfile.TarFile, manifest: dict[str, Any]) -> tuple[str, str]:
    """NiiVue's licence (from the tarball when it has one) and where it came from."""
    for name in ("package/LICENSE", "package/LICENSE.md", "package/LICENSE.txt"):
        text = _read_member(archive, name)
        if text is not None:
            return text.decode(), f"tarball {name}"
    declared = manifest.get("license")
    if declared != "BSD-2-Clause":
        sys.exit(
            f"fetch_niivue: the tarball has no LICENSE and package.json declares {declared!r}, "
            "not BSD-2-Clause: check the new licence by hand before shipping"
        )
    return _BSD_2_CLAUSE, "BSD-2-Clause text (package.json's declared licence; no LICENSE file)"


def _colormaps(archive: tarfile.TarFile) -> list[str]:
    """Names of NiiVue's built-in colormaps (``src/cmaps/NAME.json``; ``_*`` are internal)."""
    names = set()
    for name in archive.getnames():
        folder, _, file = name.rpartition("/")
        if folder == "package/src/cmaps" and file.endswith(".json") and not file.startswith("_"):
            names.add(file.removesuffix(".json"))
    if not names:
        sys.exit("fetch_niivue: no colormaps under package/src/cmaps: the layout changed")
    return sorted(names)


def _bundled_licences(manifest: dict[str, Any]) -> dict[str, str]:
    """SPDX licence of each runtime dependency (the UMD bundle includes them)."""
    licences = {}
    for name in sorted(manifest.get("dependencies", {})):
        licences[name] = str(_npm("view", name, "license"))
    return licences


def fetch(version: str, *, check_only: bool) -> dict[str, Any]:
    """Download, verify and (unless ``check_only``) install ``@niivue/niivue@version``."""
    if version == "latest":
        version = str(_npm("view", PACKAGE, "version"))
    spec = f"{PACKAGE}@{version}"
    integrity = str(_npm("view", spec, "dist.integrity"))
    with tempfile.TemporaryDirectory() as tmp:
        packed = _npm("pack", spec, "--pack-destination", tmp)
        tarball = Path(tmp) / packed[0]["filename"]
        _check_integrity(tarball, integrity)
        with tarfile.open(tarball, "r:gz") as archive:
            bundle = _read_member(archive, BUNDLE_MEMBER)
            if bundle is None:
                sys.exit(f"fetch_niivue: {spec} has no {BUNDLE_MEMBER}: the layout changed")
            manifest_bytes = _read_member(archive, "package/package.json")
            manifest = json.loads(manifest_bytes or b"{}")
            licence, licence_source = _licence_text(archive, manifest)
            colormaps = _colormaps(archive)
    bundled = _bundled_licences(manifest)
    notice = licence.rstrip() + "\n\n" + _third_party_notice(bundled)
    pin = {
        "package": PACKAGE,
        "version": version,
        "tarball_integrity": integrity,
        "file": BUNDLE,
        "source": BUNDLE_MEMBER.removeprefix("package/"),
        "sha256": hashlib.sha256(bundle).hexdigest(),
        "bytes": len(bundle),
        "license": manifest.get("license"),
        "license_file": LICENSE,
        "license_source": licence_source,
        "bundled_dependencies": bundled,
        "colormaps": colormaps,
    }
    if not check_only:
        STATIC.mkdir(parents=True, exist_ok=True)
        (STATIC / BUNDLE).write_bytes(bundle)
        (STATIC / LICENSE).write_text(notice)
        (STATIC / PIN).write_text(json.dumps(pin, indent=2) + "\n")
    return pin


def _third_party_notice(bundled: dict[str, str]) -> str:
    lines = [
        "niivue.umd.js also includes these npm packages, under their own licences:",
        "",
        *(f"- {name}: {licence}" for name, licence in bundled.items()),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    """Command line: ``fetch_niivue.py [--version V|latest] [--check]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", help="npm version to fetch (default: the pinned one)")
    parser.add_argument(
        "--check",
        action="store_true",
        help="verify the download and compare it with the shipped files; write nothing",
    )
    args = parser.parse_args(argv)
    version = args.version or _pinned_version()
    pin = fetch(version, check_only=args.check)
    if args.check:
        shipped = json.loads((STATIC / PIN).read_text())
        same = shipped["sha256"] == pin["sha256"]
        print(
            f"{PACKAGE}@{pin['version']}: sha256 {pin['sha256']} ({'same as' if same else 'differs from'} the shipped bundle)"
        )
        if not same:
            sys.exit(1)
        return
    print(f"{PACKAGE}@{pin['version']}: {pin['bytes']} bytes, sha256 {pin['sha256']} -> {STATIC}")


if __name__ == "__main__":
    main()
