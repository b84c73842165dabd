"""``brrrr view``: write a standalone NiiVue page of a volume and its overlays."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["view"]


def view(
    image: Annotated[Path, typer.Argument(help="Base volume: NIfTI, MGZ, a DICOM file or folder.")],
    overlay: Annotated[
        list[Path] | None,
        typer.Option("--overlay", help="A volume drawn on top (repeatable), e.g. a lesion mask."),
    ] = None,
    colormap: Annotated[str, typer.Option(help="Colormap of the overlays.")] = "red",
    opacity: Annotated[float, typer.Option(help="Opacity of the overlays, 0-1.")] = 0.6,
    out: Annotated[Path, typer.Option("--out", "-o", help="The HTML file to write.")] = Path(
        "view.html"
    ),
) -> None:
    """Write an HTML page (NiiVue inlined, works offline) showing IMAGE and its overlays."""
    from brrrr.demos.viewer import Layer, View

    layers = [Layer(image)]
    layers += [Layer(path, colormap=colormap, opacity=opacity) for path in overlay or []]
    written = View(layers).to_html(out)
    typer.echo(f"wrote {written} ({written.stat().st_size / 1e6:.1f} MB)")
