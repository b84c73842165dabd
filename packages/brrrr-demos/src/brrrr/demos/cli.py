"""``brrrr view``: write a standalone NiiVue page of a volume and its overlays."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["demo", "view"]


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


def demo(
    sample_dir: Annotated[
        Path | None,
        typer.Option(
            help="Where the built-in sample is written (default: $BRRRR_DEMO_DIR, else "
            "~/.cache/brrrr/demo); reused when complete."
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Interface to listen on (0.0.0.0 to share).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int | None, typer.Option(help="Port (default: 7860 or the next free).")] = None,
    tab: Annotated[
        list[str] | None,
        typer.Option("--tab", help="Only this tab: explorer, stroke, atlas (repeatable)."),
    ] = None,
    concurrency: Annotated[int, typer.Option(help="Jobs of one kind that run at once.")] = 2,
    max_upload_mb: Annotated[float, typer.Option(help="Largest upload accepted, in MB.")] = 256.0,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Start, segment a sample case through the running app's API, print the "
            "result and stop (a smoke test of the whole demo).",
        ),
    ] = False,
) -> None:
    """Launch the demos (dataset explorer, stroke segmentation, atlas) on the built-in sample."""
    from brrrr.demos.apps.app import build_demo, launch, prepare_sample

    tabs = list(tab) if tab else None
    typer.echo("preparing the built-in sample …")
    root = prepare_sample(sample_dir, tabs=tabs)
    typer.echo(f"sample in {root}")
    app = build_demo(root, tabs=tabs, concurrency_limit=concurrency, max_upload_mb=max_upload_mb)
    if not check:
        launch(app, host=host, port=port, block=True)
        return
    url = launch(app, host=host, port=port, block=False)
    typer.echo(f"brrrr demo running on {url}")
    try:
        _check(url, tabs)
    finally:
        app.close()


def _check(url: str, tabs: list[str] | None) -> None:
    """Call the stroke endpoint (or the first tab's) once through ``gradio_client``."""
    import json

    from gradio_client import Client

    client = Client(url, verbose=False)
    if tabs is None or "stroke" in tabs:
        from brrrr.demos.apps.stroke import SHIPPED

        _, summary, metrics, mask = client.predict(
            "case-000", None, None, None, None, SHIPPED, "mean", 0.5, api_name="/segment"
        )
        typer.echo(f"segmented case-000: {json.dumps(summary)}")
        typer.echo(f"ISLES'22 metrics: {json.dumps(metrics)}")
        typer.echo(f"wrote {mask}")
    else:
        endpoints = sorted(
            client.view_api(print_info=False, return_format="dict")["named_endpoints"]
        )
        typer.echo(f"endpoints: {', '.join(endpoints)}")
