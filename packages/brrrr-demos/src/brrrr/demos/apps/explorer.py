"""The Dataset explorer tab: open a BIDS folder or a ``brrrr bids to-hf`` output, filter, look.

* **Open** (``api_name="explorer_open"``): a folder typed in, or one of the two sample folders
  (:func:`prepare` writes a BIDS tree and its ``to_hf`` output). BIDS is indexed through
  ``brrrr.ingest`` (headers only); Parquet shards are read without their image column.
* **Filter** (``"explorer_filter"``): by entities (subject, session, datatype, suffix, modality,
  task, run, acquisition, desc) and header columns (shape, axcodes, dtype, a spacing range),
  all from the non-image columns: no image byte is read.
* **Show** (``"explorer_show"``, or a click on a row): decodes that row only; the volume in the
  NiiVue viewer, its JSON sidecar and its header (columns and NIfTI header fields).

Bad input (a folder that is neither kind, a row that does not decode) is shown with
``gr.Error`` and the message of a :class:`~brrrr.core.errors.BrrrrError`, never a traceback.

Example:
    >>> import gradio as gr  # doctest: +SKIP
    >>> from brrrr.demos.apps.context import DemoContext  # doctest: +SKIP
    >>> prepare(Path("sample"))  # doctest: +SKIP
    >>> with gr.Blocks() as app:  # doctest: +SKIP
    ...     with gr.Tab("Dataset explorer"):
    ...         build_explorer_tab(DemoContext(Path("sample"), Path("work")))
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from brrrr.core.errors import BrrrrError, MissingDependencyError
from brrrr.demos.apps import _explorer_data as data
from brrrr.demos.apps._explorer_sample import BIDS_NAME, HF_NAME, SAMPLE_FOLDER, write_sample

if TYPE_CHECKING:
    import pandas as pd

    from brrrr.demos.apps.context import DemoContext

__all__ = [
    "ENTITY_FILTERS",
    "HEADER_FILTERS",
    "build_explorer_tab",
    "filter_folder",
    "open_folder",
    "prepare",
    "sample_folders",
    "show_row",
]

#: The entity filters of the tab, in this order (those a dataset lacks are hidden).
ENTITY_FILTERS = (
    "subject",
    "session",
    "datatype",
    "suffix",
    "modality",
    "task",
    "run",
    "acquisition",
    "desc",
)
#: The header filters (multiselects), then a spacing range.
HEADER_FILTERS = ("shape", "axcodes", "dtype")
_VIEWER_HEIGHT = 480
_T = TypeVar("_T")


def prepare(sample_dir: Path) -> None:
    """Write the tab's sample: ``sample_dir/explorer/bids`` and its ``to_hf`` output ``bids-hf``.

    About 3 MB; a complete earlier sample is reused, a partial one rebuilt (the sample is
    written in a temporary folder and renamed into place).
    """
    write_sample(Path(sample_dir))


def sample_folders(sample_dir: Path) -> dict[str, Path]:
    """The sample folders by label: the BIDS tree and its ``to_hf`` output."""
    base = Path(sample_dir) / SAMPLE_FOLDER
    return {
        "Sample: to-hf output (Parquet shards)": base / HF_NAME,
        "Sample: BIDS folder": base / BIDS_NAME,
    }


# --- the three actions as plain functions -----------------------------------------------------


def open_folder(
    folder: str | Path,
) -> tuple[str, dict[str, list[str]], tuple[float, float] | None, pd.DataFrame]:
    """Open a folder for the table and the filters.

    Returns:
        ``(summary, choices, spacing_range, frame)``: a Markdown summary, the values of
        each filter (:func:`~brrrr.demos.apps._explorer_data.filter_choices`), the range of
        voxel sizes in mm, and every row as a table.

    Raises:
        ExplorerError: The folder is neither a BIDS dataset nor a ``to_hf`` output.
        BidsError: pybids cannot index the BIDS folder.
    """
    dataset = data.open_dataset_cached(folder)
    kind = "BIDS dataset" if dataset.kind == "bids" else "`brrrr bids to-hf` output"
    subjects = len(set(dataset.table.column("subject").to_pylist()))
    summary = (
        f"**{kind}** `{dataset.root}`: {dataset.num_rows} images of {subjects} subjects. "
        "Filters read the header columns only; the image of a row is decoded when it is shown."
    )
    if dataset.skipped:
        summary += "\n\nSkipped (unreadable): " + "; ".join(dataset.skipped)
    frame = data.rows_frame(dataset, dataset.table)
    return summary, data.filter_choices(dataset), data.spacing_range(dataset), frame


def filter_folder(
    folder: str | Path,
    *,
    entities: Mapping[str, Sequence[str]] | None = None,
    shapes: Sequence[str] = (),
    axcodes: Sequence[str] = (),
    dtypes: Sequence[str] = (),
    spacing_min_mm: float | None = None,
    spacing_max_mm: float | None = None,
) -> tuple[str, pd.DataFrame]:
    """The rows of a folder that pass the filters, without decoding any image.

    Returns:
        ``(count, frame)``: ``"N of M rows match"`` and the matching rows.

    Raises:
        ExplorerError: The folder cannot be opened, or a filter makes no sense.
    """
    dataset = data.open_dataset_cached(folder)
    row_filter = data.RowFilter(
        entities=dict(entities or {}),
        shapes=list(shapes),
        axcodes=list(axcodes),
        dtypes=list(dtypes),
        spacing_min_mm=spacing_min_mm,
        spacing_max_mm=spacing_max_mm,
    )
    table = data.filter_rows(dataset, row_filter)
    count = f"{table.num_rows} of {dataset.num_rows} rows match"
    return count, data.rows_frame(dataset, table)


def show_row(folder: str | Path, path: str) -> tuple[str, dict[str, Any], dict[str, Any], str]:
    """Decode one row: the viewer, its sidecar, its header and a caption.

    Returns:
        ``(viewer, sidecar, header, caption)``: an ``<iframe>`` for ``gr.HTML``
        (:func:`~brrrr.demos.viewer.viewer_html`), the sidecar, the header fields
        (``{"columns": …, "nifti": …}``) and a Markdown caption.

    Raises:
        ExplorerError: No row has that path, or its image cannot be read or decoded.
        LayerError: The image decodes but cannot be shown (2-D, NaN voxels).
    """
    from brrrr.demos.viewer import Layer, View, viewer_html

    detail = data.load_row(data.open_dataset_cached(folder), path)
    view = View(Layer(detail.volume, name=Path(detail.path).name), height=_VIEWER_HEIGHT)
    volume = detail.volume
    caption = (
        f"`{detail.path}`: {'×'.join(map(str, volume.shape))} voxels of "
        f"{'×'.join(f'{s:.3g}' for s in volume.spacing)} mm, {volume.axcodes}, {volume.dtype}"
    )
    if detail.note:
        caption += f" ({detail.note})"
    return viewer_html(view), detail.sidecar, detail.header, caption


# --- the tab ----------------------------------------------------------------------------------


def _gradio() -> Any:
    try:
        import gradio as gr
    except ImportError as exc:
        raise MissingDependencyError(
            f'the Dataset explorer tab needs gradio ({exc}): pip install "brrrr-demos[gradio]"'
        ) from None
    return gr


def _shown(action: Callable[[], _T]) -> _T:
    """Run ``action``; a ``BrrrrError`` becomes a ``gr.Error`` with its message (no traceback)."""
    gr = _gradio()
    try:
        return action()
    except BrrrrError as exc:
        raise gr.Error(str(exc), print_exception=False) from None


def _number(value: Any) -> float | None:
    if value is None or value == "":
        return None
    return float(value)


def build_explorer_tab(context: DemoContext) -> None:
    """Add the Dataset explorer's components and events to the ``gr.Blocks`` being built.

    Events ``explorer_open(folder)``, ``explorer_filter(folder, *filters)`` and
    ``explorer_show(folder, path)`` run at most ``context.concurrency_limit`` at once.
    When the sample was prepared, the tab opens on its ``to_hf`` output.
    """
    gr = _gradio()
    samples = sample_folders(context.sample_dir)
    first = next(iter(samples.values()))
    initial: tuple[str, dict[str, list[str]], tuple[float, float] | None, Any] | None = None
    try:
        initial = open_folder(first)
    except BrrrrError:
        initial = None  # the sample was not prepared: the tab opens empty
    # ... and shows its first T1w (else its first row) straight away.
    shown: tuple[str, str, dict[str, Any], dict[str, Any], str] | None = None
    if initial is not None and len(initial[3]):
        frame = initial[3]
        picked = frame[frame["suffix"] == "T1w"] if "suffix" in frame else frame.iloc[:0]
        row = str((picked if len(picked) else frame)["path"].iloc[0])
        try:
            shown = (row, *show_row(first, row))
        except BrrrrError:
            shown = None
    limit = context.concurrency_limit

    gr.Markdown(
        "Open a BIDS folder or a `brrrr bids to-hf` output folder, filter its rows by "
        "entities and header columns (no image is decoded), then click a row to view it."
    )
    with gr.Row():
        sample = gr.Dropdown(
            choices=[(label, str(path)) for label, path in samples.items()],
            value=str(first) if initial else None,
            label="Sample folders",
            scale=1,
        )
        folder = gr.Textbox(
            value=str(first) if initial else "",
            label="Folder (BIDS root or to-hf output)",
            placeholder="/data/ds004884 or /data/ds004884-hf",
            scale=3,
        )
        open_button = gr.Button("Open", variant="primary", scale=0)
    summary = gr.Markdown(initial[0] if initial else "No folder open.")
    choices = initial[1] if initial else {}
    with gr.Accordion("Filters", open=True):
        with gr.Row():
            entity_boxes = [
                gr.Dropdown(
                    choices=choices.get(name, []),
                    value=[],
                    multiselect=True,
                    label=name,
                    visible=name in choices,
                    min_width=140,
                )
                for name in ENTITY_FILTERS
            ]
        with gr.Row():
            header_boxes = [
                gr.Dropdown(
                    choices=choices.get(name, []),
                    value=[],
                    multiselect=True,
                    label=name,
                    min_width=140,
                )
                for name in HEADER_FILTERS
            ]
            spacing = initial[2] if initial else None
            spacing_min = gr.Number(
                value=None if spacing is None else spacing[0], label="spacing ≥ (mm)"
            )
            spacing_max = gr.Number(
                value=None if spacing is None else spacing[1], label="spacing ≤ (mm)"
            )
        filter_button = gr.Button("Filter")
    count = gr.Markdown("")
    table = gr.Dataframe(
        value=initial[3] if initial else None,
        label="Rows (click one to show it)",
        interactive=False,
        max_height=360,
    )
    with gr.Row():
        row_path = gr.Textbox(
            value=shown[0] if shown else "",
            label="Row path",
            placeholder="sub-01/ses-1/anat/sub-01_T1w.nii.gz",
        )
        show_button = gr.Button("Show", scale=0)
    caption = gr.Markdown(shown[4] if shown else "")
    viewer = gr.HTML(shown[1] if shown else None, label="Volume")
    with gr.Row():
        sidecar = gr.JSON(shown[2] if shown else None, label="Sidecar (after BIDS inheritance)")
        header = gr.JSON(shown[3] if shown else None, label="Header")

    def on_open(path: str) -> list[Any]:
        text, found, span, frame = _shown(lambda: open_folder(path))
        updates: list[Any] = [text]
        updates += [
            gr.Dropdown(choices=found.get(n, []), value=[], visible=n in found)
            for n in ENTITY_FILTERS
        ]
        updates += [gr.Dropdown(choices=found.get(n, []), value=[]) for n in HEADER_FILTERS]
        updates += [
            None if span is None else span[0],
            None if span is None else span[1],
            frame,
            "",
        ]
        return updates

    def on_filter(path: str, *values: Any) -> tuple[str, Any]:
        entity_values = values[: len(ENTITY_FILTERS)]
        shapes, axcodes, dtypes, low, high = values[len(ENTITY_FILTERS) :]
        entities = {
            name: list(chosen or [])
            for name, chosen in zip(ENTITY_FILTERS, entity_values, strict=True)
            if chosen
        }
        return _shown(
            lambda: filter_folder(
                path,
                entities=entities,
                shapes=list(shapes or []),
                axcodes=list(axcodes or []),
                dtypes=list(dtypes or []),
                spacing_min_mm=_number(low),
                spacing_max_mm=_number(high),
            )
        )

    def on_show(path: str, row: str) -> tuple[str, dict[str, Any], dict[str, Any], str]:
        return _shown(lambda: show_row(path, row))

    def on_select(path: str, event: Any) -> tuple[Any, ...]:
        picked = event.row_value[0] if event.row_value else ""
        return (picked, *on_show(path, picked))

    # Gradio hands the clicked cell to the parameter annotated gr.SelectData; with postponed
    # annotations it would look the name up in this module, where gradio is not imported.
    on_select.__annotations__["event"] = gr.SelectData

    open_outputs = [summary, *entity_boxes, *header_boxes, spacing_min, spacing_max, table, count]
    filter_inputs = [folder, *entity_boxes, *header_boxes, spacing_min, spacing_max]
    show_outputs = [viewer, sidecar, header, caption]
    open_button.click(
        on_open, [folder], open_outputs, api_name="explorer_open", concurrency_limit=limit
    )
    folder.submit(
        on_open, [folder], open_outputs, api_visibility="private", concurrency_limit=limit
    )
    sample.input(lambda chosen: chosen, [sample], [folder], api_visibility="private").then(
        on_open, [folder], open_outputs, api_visibility="private", concurrency_limit=limit
    )
    filter_button.click(
        on_filter,
        filter_inputs,
        [count, table],
        api_name="explorer_filter",
        concurrency_limit=limit,
    )
    show_button.click(
        on_show, [folder, row_path], show_outputs, api_name="explorer_show", concurrency_limit=limit
    )
    row_path.submit(
        on_show, [folder, row_path], show_outputs, api_visibility="private", concurrency_limit=limit
    )
    table.select(
        on_select,
        [folder],
        [row_path, *show_outputs],
        api_visibility="private",
        concurrency_limit=limit,
    )
