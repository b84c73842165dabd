"""Coordinate tables from the sets NiMARE ships, checked against NiMARE itself."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from brrrr.core.cli import build_app
from brrrr.core.errors import MissingDependencyError
from brrrr.ingest.errors import CoordinateSourceError
from brrrr.ingest.neurosynth import (
    COLUMNS,
    SHIPPED_STUDYSET,
    coordinates_table,
    load_studyset,
    outside_mask,
    read_parquet,
    summarize,
    tal_to_mni,
    to_dataset,
    write_parquet,
)

nimare = pytest.importorskip("nimare")
NIMARE = Path(nimare.__file__).parent
SHIPPED = NIMARE / "resources" / SHIPPED_STUDYSET
runner = CliRunner()


@pytest.fixture(scope="module")
def shipped() -> pd.DataFrame:
    return coordinates_table()


def test_shipped_studyset_counts(shipped: pd.DataFrame) -> None:
    summary = summarize(shipped)
    # selection_summary.json of the release says 320 studies, 906 analyses, 9492 foci.
    release = json.loads((SHIPPED / "selection_summary.json").read_text())["output_tables"]
    assert (summary["studies"], summary["analyses"], summary["foci"]) == (320, 906, 9492)
    assert release["studies"] == 320
    assert release["analyses"] == 906
    assert release["coordinates"] == 9492
    assert summary["analyses_with_foci"] == 906
    assert summary["source_spaces"] == {"MNI": 7819, "TAL": 1159, "OTHER": 347, "UNKNOWN": 167}
    assert summary["converted_tal_to_mni"] == 1159
    assert summary["not_in_mni"] == 347 + 167
    assert list(shipped.columns) == list(COLUMNS)
    assert shipped.groupby(["study_id", "analysis_id"])["focus"].max().sum() == 9492 - 906


def test_the_rows_are_nimares_rows(shipped: pd.DataFrame) -> None:
    raw = pd.read_parquet(SHIPPED / "coordinates.parquet")
    mine = shipped[["study_id", "analysis_id", "source_x", "source_y", "source_z"]]
    theirs = raw[["study_id", "contrast_id", "x", "y", "z"]].set_axis(mine.columns, axis=1)
    order = list(mine.columns)
    pd.testing.assert_frame_equal(
        mine.sort_values(order).reset_index(drop=True),
        theirs.astype(mine.dtypes.to_dict()).sort_values(order).reset_index(drop=True),
    )


def test_talairach_is_converted_exactly_as_nimare_does(shipped: pd.DataFrame) -> None:
    from nimare.studyset import Studyset
    from nimare.utils import tal2mni

    tal = shipped[shipped["source_space"] == "TAL"]
    source = tal[["source_x", "source_y", "source_z"]].to_numpy()
    np.testing.assert_allclose(tal[["x", "y", "z"]].to_numpy(), tal2mni(source), atol=1e-9)
    assert (tal["space"] == "MNI").all()
    # NiMARE's own harmonisation to MNI, row for row.
    harmonised = Studyset(str(SHIPPED), target="mni152_2mm").coordinates.reset_index(drop=True)
    rows = (shipped["source_space"] == "TAL").to_numpy()
    np.testing.assert_allclose(
        shipped.loc[rows, ["x", "y", "z"]].to_numpy(),
        harmonised.loc[rows, ["x", "y", "z"]].to_numpy(dtype=float),
        atol=1e-9,
    )


def test_a_talairach_sleuth_file() -> None:
    from nimare.utils import tal2mni

    table = coordinates_table("nimare:test_sleuth_file2.txt")
    assert set(table["source_space"]) == {"TAL"}
    assert set(table["space"]) == {"MNI"}
    # The numbers as written in the file, then NiMARE's tal2icbm transform.
    assert table[["source_x", "source_y", "source_z"]].to_numpy().tolist() == [
        [-18.0, -58.0, -24.0],
        [-18.0, -58.0, -24.0],
        [26.0, -64.0, -50.0],
        [12.0, -70.0, -42.0],
    ]
    assert table["sample_size"].tolist() == [25.0, 20.0, 20.0, 20.0]
    np.testing.assert_allclose(
        table[["x", "y", "z"]].to_numpy(),
        tal2mni(table[["source_x", "source_y", "source_z"]].to_numpy()),
        atol=1e-9,
    )
    # Three points make tal2mni's orientation guess ambiguous; the result must not change.
    three = np.array([[-18.0, -58.0, -24.0], [10.0, 20.0, 30.0], [-9.0, -72.0, 57.0]])
    np.testing.assert_allclose(tal_to_mni(three), tal2mni(np.vstack([three, three]))[:3])


def test_other_spaces_are_kept_not_guessed(shipped: pd.DataFrame) -> None:
    other = shipped[shipped["source_space"].isin(["OTHER", "UNKNOWN"])]
    assert len(other) == 514
    assert (other["space"] == other["source_space"]).all()
    assert (other["x"] == other["source_x"]).all()
    assert other["in_brain_mask"].isna().all()


def test_foci_outside_the_brain_mask_are_reported_not_dropped(shipped: pd.DataFrame) -> None:
    import nibabel as nib

    mask = nib.load(
        NIMARE / "resources/templates/tpl-MNI152NLin6Asym_res-02_desc-brain_mask.nii.gz"
    )
    data = np.asarray(mask.dataobj) > 0
    mni = shipped[shipped["space"] == "MNI"]
    ijk = np.rint(nib.affines.apply_affine(np.linalg.inv(mask.affine), mni[["x", "y", "z"]]))
    ijk = ijk.astype(int)
    in_grid = ((ijk >= 0) & (ijk < data.shape)).all(axis=1)
    expected = np.zeros(len(mni), dtype=bool)
    expected[in_grid] = data[tuple(ijk[in_grid].T)]
    assert (mni["in_brain_mask"].to_numpy(dtype=bool) == expected).all()
    report = outside_mask(shipped)
    assert len(report) == (~expected).sum() == summarize(shipped)["outside_brain_mask"] > 0
    assert len(shipped) == 9492  # still all there


def test_sample_size_is_never_invented(shipped: pd.DataFrame, tmp_path: Path) -> None:
    # Two analyses of the shipped set declare sample_sizes; two others only have
    # free-text n_subjects, which is kept in metadata but not promoted.
    declared = shipped.drop_duplicates(["study_id", "analysis_id"])
    assert declared["sample_sizes"].notna().sum() == 2
    assert declared["sample_size"].notna().sum() == 2
    assert sorted(declared["sample_size"].dropna().tolist()) == [11.0, 16.0]
    assert shipped["metadata"].str.contains('"n_subjects"').any()

    studyset: dict[str, Any] = {
        "id": "s",
        "name": "sizes",
        "studies": [
            {
                "id": f"st{i}",
                "name": f"study {i}",
                "metadata": metadata,
                "analyses": [
                    {
                        "id": "a",
                        "name": "contrast",
                        "points": [{"space": "MNI", "coordinates": [0.0, 0.0, 0.0]}],
                    }
                ],
            }
            for i, metadata in enumerate([{}, {"sample_sizes": [10, 12]}, {"sample_size": 30}])
        ],
    }
    path = tmp_path / "sizes.json"
    path.write_text(json.dumps(studyset))
    table = coordinates_table(path).set_index("study_id")
    assert pd.isna(table.loc["st0", "sample_size"])
    assert table.loc["st0", "sample_sizes"] is None
    assert pd.isna(table.loc["st1", "sample_size"])  # two groups: no single number
    assert list(table.loc["st1", "sample_sizes"]) == [10.0, 12.0]
    assert table.loc["st2", "sample_size"] == 30.0


def test_sample_sizes_match_nimare() -> None:
    from nimare.studyset import Studyset

    source = NIMARE / "tests/data/sample_size_nimads_studyset.json"
    table = coordinates_table(source).drop_duplicates(["study_id", "analysis_id"])
    theirs = Studyset(str(source), target=None).sample_sizes(reduce="mean")
    assert sorted(table["sample_size"].to_numpy(dtype=float)) == sorted(theirs)


def test_parquet_and_dataset_round_trip(shipped: pd.DataFrame, tmp_path: Path) -> None:
    import datasets
    import pyarrow.parquet as pq

    path = write_parquet(shipped, tmp_path / "foci.parquet")
    back = read_parquet(path)
    pd.testing.assert_frame_equal(back, shipped)
    assert back["sample_size"].isna().sum() == shipped["sample_size"].isna().sum() > 0
    ds = to_dataset(shipped)
    assert isinstance(ds, datasets.Dataset)
    assert ds.column_names == list(COLUMNS)
    rows = pq.read_table(path).to_pylist()
    assert ds.to_list() == rows
    ds.to_parquet(str(tmp_path / "from_dataset.parquet"))
    pd.testing.assert_frame_equal(read_parquet(tmp_path / "from_dataset.parquet"), back)
    assert rows[0]["sample_size"] is None  # null, not NaN


@pytest.mark.parametrize(
    ("source", "foci"),
    [
        ("nimare:neurosynth_laird_studies.json", 1117),  # NiMARE Dataset JSON, TAL + UNKNOWN
        ("nimare:nidm_pain_studyset.json", 267),  # NIMADS JSON
        ("nimare:data-neurosynth_version-7_coordinates.tsv.gz", 1420),  # Neurosynth files
        ("nimare:test_sleuth_file.txt", 7),  # Sleuth, MNI
        ("nimare:neurostore_parquet_studyset", 47),  # parquet release
    ],
)
def test_other_shipped_sources(source: str, foci: int) -> None:
    table = coordinates_table(source)
    assert len(table) == foci
    assert (table["source"] == source).all()
    assert table["x"].notna().all()


def test_online_sources_go_through_nimares_fetchers(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from nimare import extract

    calls: list[tuple[str, Any]] = []

    def neurostore(**kwargs: Any) -> str:
        calls.append(("neurostore", kwargs))
        return str(NIMARE / "resources/neurostore_parquet_studyset")

    def neurosynth(**kwargs: Any) -> list[dict[str, str]]:
        calls.append(("neurosynth", kwargs))
        data = NIMARE / "tests/data"
        return [
            {
                "coordinates": str(data / "data-neurosynth_version-7_coordinates.tsv.gz"),
                "metadata": str(data / "data-neurosynth_version-7_metadata.tsv.gz"),
            }
        ]

    monkeypatch.setattr(extract, "fetch_neurostore", neurostore)
    monkeypatch.setattr(extract, "fetch_neurosynth", neurosynth)
    assert len(coordinates_table("neurostore:2026-07", data_dir=tmp_path)) == 47
    assert len(coordinates_table("neurosynth", data_dir=tmp_path)) == 1420
    assert calls[0] == (
        "neurostore",
        {"version": "2026-07", "data_dir": tmp_path, "return_type": "files"},
    )
    assert calls[1][1]["version"] == "7"

    def offline(**kwargs: Any) -> None:
        raise OSError("network is unreachable")

    monkeypatch.setattr(extract, "fetch_neurostore", offline)
    with pytest.raises(CoordinateSourceError, match="neurostore: download failed"):
        coordinates_table("neurostore")


def test_clear_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(CoordinateSourceError, match="no such file"):
        load_studyset(tmp_path / "missing.json")
    with pytest.raises(CoordinateSourceError, match="nimare:nope: NiMARE ships no resource"):
        load_studyset("nimare:nope")
    with pytest.raises(CoordinateSourceError, match="neither a NIMADS studyset"):
        load_studyset("nimare:nimads_annotation.json")
    monkeypatch.setitem(sys.modules, "nimare", None)
    with pytest.raises(MissingDependencyError, match=r'pip install "brrrr-ingest\[neurosynth\]"'):
        load_studyset()


def test_cli_export(tmp_path: Path) -> None:
    import datasets

    app = build_app()
    out = tmp_path / "shipped.parquet"
    result = runner.invoke(app, ["neurosynth", "export", str(out)])
    assert result.exit_code == 0, result.output
    assert f"9492 foci, 906 analyses, 320 studies from nimare:{SHIPPED_STUDYSET}" in result.output
    report = json.loads(Path(f"{out}.report.json").read_text())
    assert len(report["outside_brain_mask_foci"]) == report["outside_brain_mask"] > 0
    assert len(read_parquet(out)) == 9492
    folder = tmp_path / "sleuth"
    result = runner.invoke(
        app,
        [
            "neurosynth",
            "export",
            "nimare:test_sleuth_file2.txt",
            str(folder),
            "--format",
            "dataset",
        ],
    )
    assert result.exit_code == 0, result.output
    assert datasets.load_from_disk(str(folder)).num_rows == 4
    bad = runner.invoke(app, ["neurosynth", "export", "a", "b", "c"])
    assert bad.exit_code != 0
