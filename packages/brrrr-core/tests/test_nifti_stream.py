"""The streaming NIfTI reader (``stream_nifti``) and the piecewise inflate behind both readers."""

from __future__ import annotations

import gzip
import io
import threading
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from brrrr.core import load_volume
from brrrr.core.errors import UnsupportedFormatError, VolumeReadError, VolumeTooLargeError
from brrrr.core.io._inflate import ReadAhead, gunzip_head, inflate_into
from brrrr.core.io.nifti import stream_nifti
from brrrr.core.testing import write_broken_nifti, write_nifti

# Random voxels compress badly: this volume spans several of the inflater's 128 KiB pieces.
SHAPE = (64, 48, 80)


def _noise(dtype: str, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.normal(size=SHAPE) * 300 + 100).astype(dtype)


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
@pytest.mark.parametrize("dtype", ["u1", "i2", ">i2", "f4", ">f8"])
def test_stream_result_equals_load_volume(tmp_path: Path, suffix: str, dtype: str) -> None:
    data = _noise(dtype)
    if data.dtype.kind == "f":
        data[3, 4, 5], data[60, 40, 30] = np.nan, np.inf
    path = write_nifti(tmp_path / f"x{suffix}", data, np.diag([0.9, 0.9, 3.0, 1.0]))
    expected = load_volume(path)
    with stream_nifti(path) as stream:
        assert stream.data.shape == SHAPE
        volume = stream.result()
    np.testing.assert_array_equal(volume.data, expected.data)
    assert volume.data.dtype == expected.data.dtype
    assert volume.data.flags.writeable
    np.testing.assert_array_equal(volume.affine, expected.affine)
    assert volume.metadata == expected.metadata
    assert volume.source == expected.source


def test_stream_applies_scale_and_requested_dtype(tmp_path: Path) -> None:
    image = nib.Nifti1Image(_noise("i2"), np.eye(4))
    image.header.set_slope_inter(0.5, -3.0)
    path = tmp_path / "scaled.nii.gz"
    nib.save(image, path)
    for dtype in (None, "float64", "int32"):
        expected = load_volume(path, dtype=dtype)
        volume = stream_nifti(path, dtype=dtype).result()
        assert volume.dtype == expected.dtype
        np.testing.assert_array_equal(volume.data, expected.data)
        assert volume.metadata == expected.metadata


def test_wait_gives_the_first_slices_before_the_rest(tmp_path: Path) -> None:
    data = _noise("i2")
    path = write_nifti(tmp_path / "x.nii.gz", data)
    with stream_nifti(path) as stream:
        per_slice = SHAPE[0] * SHAPE[1]
        stream.wait(3 * per_slice)
        assert stream.voxels_ready >= 3 * per_slice
        np.testing.assert_array_equal(stream.data[:, :, :3], data[:, :, :3])
        stream.wait()
        assert stream.voxels_ready == data.size
        np.testing.assert_array_equal(stream.data, data)


def test_stream_of_bytes_and_multi_member_gzip(tmp_path: Path) -> None:
    data = _noise("i2")
    raw = nib.Nifti1Image(data, np.eye(4)).to_bytes()
    cut = len(raw) // 3
    volume = stream_nifti(gzip.compress(raw[:cut]) + gzip.compress(raw[cut:])).result()
    np.testing.assert_array_equal(volume.data, data)
    assert volume.source is None


def test_content_beyond_the_declared_voxels_is_ignored(tmp_path: Path) -> None:
    data = _noise("i2")
    raw = nib.Nifti1Image(data, np.eye(4)).to_bytes()
    path = tmp_path / "long.nii.gz"
    path.write_bytes(gzip.compress(raw + b"\x00" * 100_000))
    np.testing.assert_array_equal(load_volume(path).data, data)
    np.testing.assert_array_equal(stream_nifti(path).result().data, data)


def _damaged(tmp_path: Path, kind: str) -> Path:
    blob = bytearray(gzip.compress(nib.Nifti1Image(_noise("i2"), np.eye(4)).to_bytes()))
    if kind == "crc":
        blob[-6] ^= 0xFF
    elif kind == "length":
        blob[-2] ^= 0xFF
    elif kind == "truncated":
        blob = blob[: len(blob) * 2 // 3]
    elif kind == "no_trailer":  # every voxel there, the CRC and length gone
        blob = blob[:-8]
    elif kind == "half_trailer":
        blob = blob[:-4]
    path = tmp_path / f"{kind}.nii.gz"
    path.write_bytes(bytes(blob))
    return path


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        ("crc", "corrupt gzip"),
        ("length", "corrupt gzip"),
        ("truncated", "truncated"),
        ("no_trailer", "before its CRC"),
        ("half_trailer", "before its CRC"),
    ],
)
def test_damaged_streams_raise_named_errors(tmp_path: Path, kind: str, words: str) -> None:
    path = _damaged(tmp_path, kind)
    with pytest.raises(VolumeReadError, match=words) as info:
        load_volume(path)
    assert str(path) in str(info.value)
    with stream_nifti(path) as stream:
        for _ in range(2):  # every later call raises it too
            with pytest.raises(VolumeReadError, match=words) as info:
                stream.result()
            assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("kind", "error", "words"),
    [
        ("truncated_gzip", VolumeReadError, "truncated"),
        ("corrupt_gzip", VolumeReadError, "corrupt gzip"),
        ("wrong_magic", VolumeReadError, "magic"),
        ("zero_dim", VolumeReadError, "zero-length"),
        ("truncated_data", VolumeReadError, "truncated"),
        ("not_an_image", UnsupportedFormatError, "NIfTI"),
        ("empty", VolumeReadError, "empty"),
    ],
)
def test_broken_files_raise_named_errors(
    tmp_path: Path, kind: str, error: type, words: str
) -> None:
    path = write_broken_nifti(tmp_path / f"{kind}.nii.gz", kind)  # type: ignore[arg-type]
    with pytest.raises(error, match=words) as info:
        stream_nifti(path).result()
    assert str(path) in str(info.value)


def test_max_voxels_refused_before_the_thread_starts(tmp_path: Path) -> None:
    path = write_nifti(tmp_path / "x.nii.gz", shape=(8, 9, 10))
    with pytest.raises(VolumeTooLargeError, match="max_voxels"):
        stream_nifti(path, max_voxels=100)


def test_close_stops_the_thread(tmp_path: Path) -> None:
    path = write_nifti(tmp_path / "x.nii.gz", _noise("f8"))
    stream = stream_nifti(path)
    stream.close()
    assert stream._thread is not None
    assert not stream._thread.is_alive()


def test_inflate_into_skips_the_header_and_fills_exactly() -> None:
    content = np.random.default_rng(1).integers(0, 256, 600_000, dtype=np.uint8).tobytes()
    raw = gzip.compress(content)
    seen: list[int] = []
    out = np.zeros(500_000, dtype=np.uint8)
    inflate_into(raw, out, skip=1000, name="x.gz", progress=seen.append)
    assert out.tobytes() == content[1000:501_000]
    assert seen == sorted(seen)
    assert seen[-1] == out.size
    assert len(seen) > 2  # in pieces
    with pytest.raises(VolumeReadError, match="expected at least 700000 bytes"):
        inflate_into(raw, np.zeros(699_000, dtype=np.uint8), skip=1000, name="x.gz")
    assert gunzip_head(raw, 540, name="x.gz") == content[:540]
    assert gunzip_head(gzip.compress(b"short"), 540, name="x.gz") == b"short"


def test_inflate_while_another_thread_reads_the_file() -> None:
    content = np.random.default_rng(2).integers(0, 256, 3_000_000, dtype=np.uint8).tobytes()
    raw = gzip.compress(content, compresslevel=1)
    out = np.zeros(len(content) - 352, dtype=np.uint8)
    reader = ReadAhead(io.BufferedReader(io.BytesIO(raw)), len(raw))  # type: ignore[arg-type]
    reader.read(1 << 16)
    seen: list[int] = []
    worker = threading.Thread(
        target=inflate_into,
        args=(reader.buffer, out),
        kwargs={
            "skip": 352,
            "name": "x.gz",
            "available": reader.available,
            "progress": seen.append,
        },
    )
    worker.start()
    reader.read()
    worker.join()
    assert out.tobytes() == content[352:]
    assert len(seen) > 10  # in pieces, however far ahead the reader is
    # A file that ends before its size said (it shrank): the inflater sees a truncated stream.
    short = ReadAhead(io.BufferedReader(io.BytesIO(raw[:100_000])), len(raw))  # type: ignore[arg-type]
    short.read()
    assert short.available(len(raw)) == 100_000
    with pytest.raises(VolumeReadError, match="truncated"):
        inflate_into(short.buffer, out, skip=352, name="x.gz", available=short.available)
