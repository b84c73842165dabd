"""Any external command that reads NIfTI inputs and writes a NIfTI mask, as a segmenter.

The DeepISLES container, ``nnUNetv2_predict``, a colleague's script: anything run as a
command line. The command is a template, a list of arguments in which ``{name}`` is replaced:

* ``{dwi}``, ``{adc}``, ``{flair}``… — the path of that input channel, written as NIfTI into
  a fresh working folder (file names from ``input_names``, default ``{channel}.nii.gz``);
* ``{output}`` — the path where the command must write the mask; ``{output_dir}`` its folder;
* ``{input_dir}`` — the folder holding the inputs (for tools that read a folder).

An optional channel that was not given drops the argument naming it, and the flag just before
it when that flag holds no placeholder (``["--flair", "{flair}"]`` disappears).

The command runs without a shell (``subprocess.run``) under a timeout. Its output must be a
mask on the reference input's grid (same shape, affine within 1e-4 mm) holding only 0 and 1.
A command that cannot start, exits non-zero, times out, or writes no file, a file on another
grid or a file with other values is a :class:`SegmentationError` that names the command or
the file and carries the tail of the command's stderr.

Example:
    >>> segmenter = ExternalCommandSegmenter(  # doctest: +SKIP
    ...     ["docker", "run", "--rm", "-v", "{input_dir}:/in", "-v", "{output_dir}:/out",
    ...      "isleschallenge/deepisles", "--dwi_file_name", "dwi.nii.gz",
    ...      "--adc_file_name", "adc.nii.gz"],
    ...     channels=("dwi", "adc"), output_name="lesion_msk.nii.gz", timeout_s=3600)
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from brrrr.core.volume import Volume
from brrrr.models.segmentation.errors import SegmentationError
from brrrr.models.segmentation.preprocessing import GRID_ATOL_MM, align_to_reference
from brrrr.models.segmentation.segmenter import Segmenter

__all__ = ["ExternalCommandSegmenter", "fill_template"]

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_RESERVED = ("output", "output_dir", "input_dir")
_STDERR_TAIL = 2000


def fill_template(
    template: Sequence[str], values: Mapping[str, str], *, optional: Sequence[str] = ()
) -> list[str]:
    """Replace ``{name}`` in each argument; arguments naming a missing optional name go.

    Args:
        template: The command's arguments.
        values: Replacement of each placeholder name.
        optional: Names that may be missing: an argument naming one is dropped, with the flag
            before it (an argument starting with ``-`` and holding no placeholder).

    Returns:
        The arguments.

    Raises:
        SegmentationError: A placeholder names neither a value nor an optional name.
    """
    out: list[str] = []
    flags: list[bool] = []  # whether each kept argument is a bare flag of the template
    for argument in template:
        names = _PLACEHOLDER.findall(argument)
        absent = [n for n in names if n not in values]
        if absent:
            unknown = [n for n in absent if n not in optional]
            if unknown:
                raise SegmentationError(
                    f"the command template names {{{unknown[0]}}}, which is neither an input "
                    f"channel nor one of {{{'}, {'.join(_RESERVED)}}}; known: "
                    + ", ".join(sorted(values))
                )
            if flags and flags[-1]:
                out.pop()
                flags.pop()
            continue
        out.append(_PLACEHOLDER.sub(lambda m: values[m.group(1)], argument))
        flags.append(argument.startswith("-") and not names)
    return out


def _tail(text: str | bytes | None) -> str:
    if text is None:
        return ""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    text = text.strip()
    return text[-_STDERR_TAIL:]


class ExternalCommandSegmenter(Segmenter):
    """Run a command line that writes a lesion mask (see the module docstring).

    Args:
        command: The argument template (a list; no shell is used).
        channels: Input channels the command needs.
        optional_channels: Input channels it takes when given.
        reference: The channel whose grid the mask must be on (default: the first).
        input_names: File name of each channel in the working folder (default
            ``{channel}.nii.gz``).
        output_name: File name of the mask the command writes in ``{output_dir}``.
        inputs_on: ``"original"`` writes each channel on its own grid, as given;
            ``"reference"`` resamples every channel onto the reference grid first.
        timeout_s: Seconds before the command is killed.
        workdir: Parent folder of the working folders (default: the system's temp folder).
        env: Extra environment variables of the command.
        name: Short name for metadata and messages.
    """

    def __init__(
        self,
        command: Sequence[str],
        *,
        channels: Sequence[str],
        optional_channels: Sequence[str] = (),
        reference: str | None = None,
        input_names: Mapping[str, str] | None = None,
        output_name: str = "mask.nii.gz",
        inputs_on: Literal["original", "reference"] = "original",
        timeout_s: float = 3600.0,
        workdir: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        name: str = "external",
    ) -> None:
        if isinstance(command, str) or not command:
            raise SegmentationError(
                "the command is a non-empty list of arguments, e.g. "
                '["my-tool", "--dwi", "{dwi}", "--out", "{output}"]'
            )
        super().__init__(
            channels,
            optional_channels=optional_channels,
            reference=reference,
            threshold=0.5,
            name=name,
        )
        clash = sorted(set(self.channels + self.optional_channels) & set(_RESERVED))
        if clash:
            raise SegmentationError(f"channel names {clash} are reserved placeholders")
        if inputs_on not in ("original", "reference"):
            raise SegmentationError(f"inputs_on must be original or reference, got {inputs_on!r}")
        if timeout_s <= 0:
            raise SegmentationError(f"timeout_s must be positive, got {timeout_s}")
        self.command = [str(a) for a in command]
        self.input_names = dict(input_names or {})
        self.output_name = output_name
        self.inputs_on = inputs_on
        self.timeout_s = float(timeout_s)
        self.workdir = None if workdir is None else Path(workdir)
        self.env = dict(env or {})
        # Fail now, not after writing the inputs, on a template naming an unknown input.
        probe = {n: n for n in (*self.channels, *_RESERVED)}
        fill_template(self.command, probe, optional=self.optional_channels)

    def _shown(self) -> str:
        return shlex.join(self.command)

    def predict(self, volumes: Mapping[str, Volume], *, reference: Volume) -> Volume:
        """Write the inputs, run the command, read and check its mask (float32 0/1)."""
        from brrrr.core import load_volume, save_volume

        if self.workdir is not None:
            self.workdir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="brrrr-segment-", dir=self.workdir) as folder:
            root = Path(folder)
            input_dir, output_dir = root / "inputs", root / "outputs"
            input_dir.mkdir()
            output_dir.mkdir()
            written = (
                align_to_reference(volumes, reference=self.reference)
                if self.inputs_on == "reference"
                else dict(volumes)
            )
            values = {"input_dir": str(input_dir), "output_dir": str(output_dir)}
            for channel in (*self.channels, *self.optional_channels):
                if channel not in written:
                    continue
                path = input_dir / self.input_names.get(channel, f"{channel}.nii.gz")
                save_volume(written[channel], path)
                values[channel] = str(path)
            output = output_dir / self.output_name
            values["output"] = str(output)
            arguments = fill_template(self.command, values, optional=self.optional_channels)
            self._run(arguments, cwd=root)
            if not output.is_file():
                raise SegmentationError(
                    f"the command finished but wrote no mask at {output.name} "
                    f"(it wrote: {', '.join(sorted(p.name for p in output_dir.iterdir())) or 'nothing'}); "
                    f"command: {self._shown()}",
                    path=output,
                )
            mask = load_volume(output)
            return self._check(mask, reference, output)

    def _run(self, arguments: list[str], *, cwd: Path) -> None:
        environment = {**os.environ, **self.env}
        try:
            completed = subprocess.run(
                arguments,
                cwd=cwd,
                env=environment,
                capture_output=True,
                timeout=self.timeout_s,
                check=False,
            )
        except FileNotFoundError:
            raise SegmentationError(
                f"cannot run {arguments[0]!r}: no such program (is it installed and on PATH?); "
                f"command: {self._shown()}"
            ) from None
        except PermissionError:
            raise SegmentationError(
                f"{arguments[0]!r} is not executable", path=arguments[0]
            ) from None
        except subprocess.TimeoutExpired as error:
            raise SegmentationError(
                f"the command ran past its timeout of {self.timeout_s:g} s and was killed; "
                f"command: {self._shown()}; stderr tail:\n{_tail(error.stderr)}"
            ) from None
        if completed.returncode != 0:
            raise SegmentationError(
                f"the command exited with status {completed.returncode}; command: "
                f"{self._shown()}; stderr tail:\n{_tail(completed.stderr)}"
            )

    def _check(self, mask: Volume, reference: Volume, path: Path) -> Volume:
        data = mask.data
        if data.ndim == 4:
            if data.shape[0] != 1:
                raise SegmentationError(
                    f"the command wrote {data.shape[0]} volumes; a mask is one 3D image", path=path
                )
            data = data[0]
        if tuple(data.shape) != tuple(reference.shape):
            raise SegmentationError(
                f"the command's mask has shape {tuple(data.shape)}, the {self.reference} input "
                f"{reference.shape}: it must be on the {self.reference} grid",
                path=path,
            )
        difference = float(np.max(np.abs(mask.affine - reference.affine)))
        if difference > GRID_ATOL_MM:
            raise SegmentationError(
                f"the command's mask has an affine differing from the {self.reference} input's "
                f"by up to {difference:.3g} mm (tolerance {GRID_ATOL_MM:g} mm): it must be on "
                f"the {self.reference} grid",
                path=path,
            )
        values = np.asarray(data)
        if values.dtype.kind == "f" and not np.isfinite(values).all():
            raise SegmentationError("the command's mask holds NaN or infinite voxels", path=path)
        other = (values != 0) & (values != 1)
        if other.any():
            found = np.unique(values[other])[:5]
            raise SegmentationError(
                "the command's mask is not binary: it holds "
                + ", ".join(f"{v:g}" for v in found.tolist())
                + " besides 0 and 1",
                path=path,
            )
        return Volume(values.astype(np.float32), reference.affine, metadata={"source": str(path)})
