"""`dvc repro` of the repository's dvc.yaml for real, in a fresh DVC project without a remote.

One slow test: the whole pipeline runs once, a second `dvc repro` does nothing, and after a
parameter changes (a segmentation threshold, a β-VAE trainer setting, a preparation voxel size,
the BIDS subject count) only the stages that depend on it run again.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _dvc_env(tmp_path: Path) -> dict[str, str]:
    """Offline, no analytics, and DVC's config and caches kept under ``tmp_path``."""
    return {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "DVC_NO_ANALYTICS": "1",
        "HF_HUB_OFFLINE": "1",
        "XDG_CONFIG_HOME": str(tmp_path / "xdg-config"),
        "XDG_CACHE_HOME": str(tmp_path / "xdg-cache"),
        "DVC_SITE_CACHE_DIR": str(tmp_path / "dvc-site-cache"),
        "DVC_GLOBAL_CONFIG_DIR": str(tmp_path / "dvc-global-config"),
        "DVC_SYSTEM_CONFIG_DIR": str(tmp_path / "dvc-system-config"),
    }


def _dvc(project: Path, env: dict[str, str], *args: str) -> str:
    process = subprocess.run(
        [str(BIN / "dvc"), *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert process.returncode == 0, (
        f"dvc {' '.join(args)} failed:\n{process.stdout[-4000:]}\n{process.stderr[-4000:]}"
    )
    return process.stdout


def _ran(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


@pytest.mark.slow
def test_dvc_repro_runs_once_then_only_what_a_parameter_changes(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(ROOT / name, project / name)
    env = _dvc_env(tmp_path)
    _dvc(project, env, "init", "--no-scm", "--quiet")

    stages = set(yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"])
    first = _dvc(project, env, "repro")
    assert _ran(first) == stages
    for name in ("segment_shipped", "segment_trained"):
        scores = json.loads((project / "metrics" / f"{name}.json").read_text())
        assert (
            scores["aggregate"]["dice"]["count"]
            == yaml.safe_load((ROOT / "params.yaml").read_text())["stroke"]["cases"]
        )
        assert 0.0 <= scores["aggregate"]["dice"]["mean"] <= 1.0
    assert "train/loss" in json.loads((project / "metrics" / "vae.json").read_text())
    prepared = json.loads((project / "metrics" / "prepare.json").read_text())
    assert prepared["images"] == prepared["cached"] > 0
    assert prepared["failed"] == 0
    assert prepared["tokens"] > 0
    assert json.loads((project / "metrics" / "maps.json").read_text())["maps"] > 0
    atlas = json.loads((project / "metrics" / "atlas.json").read_text())
    assert atlas["split"] == "test"
    assert atlas["n_maps"] == atlas["splits"]["test"] > 0
    assert {"reconstruction", "baseline", "versus_baseline"} <= set(atlas)
    per_map = (project / "metrics" / "atlas.csv").read_text().splitlines()
    assert len(per_map) == atlas["n_maps"] + 1
    verified = json.loads((project / "data" / "bids_verify.json").read_text())
    assert verified["ok"]
    assert verified["problems"] == []
    assert verified["files_checked"] > 0
    shown = json.loads(_dvc(project, env, "metrics", "show", "--json"))
    assert "metrics/segment_trained.json" in json.dumps(shown)
    _dvc(project, env, "plots", "show", "--json")

    second = _dvc(project, env, "repro")
    assert _ran(second) == set(), second
    assert json.loads(_dvc(project, env, "status", "--json")) == {}

    params = yaml.safe_load((project / "params.yaml").read_text())
    params["segment"]["trained"]["threshold"] = 0.4
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    # Only the stage that reads the parameter is stale before the run; its evaluation follows
    # when the masks change, and nothing upstream or beside it (training, the shipped model) runs.
    assert set(json.loads(_dvc(project, env, "status", "--json"))) == {"segment_trained"}
    third = _dvc(project, env, "repro")
    assert {"segment_trained"} <= _ran(third) <= {"segment_trained", "evaluate_trained"}, third
    assert json.loads(_dvc(project, env, "status", "--json")) == {}

    # A β-VAE trainer parameter reruns the training and its evaluation, not the maps.
    params["vae"]["trainer"]["max_steps"] = 2
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert set(json.loads(_dvc(project, env, "status", "--json"))) == {"train_vae"}
    assert _ran(_dvc(project, env, "repro")) == {"train_vae", "evaluate_vae"}
    assert json.loads(_dvc(project, env, "status", "--json")) == {}

    # A voxel size of the preparation reruns the preparation alone.
    params["prepare"]["through_plane_mm"] = 2.0
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert set(json.loads(_dvc(project, env, "status", "--json"))) == {"prepare"}
    assert _ran(_dvc(project, env, "repro")) == {"prepare"}
    finer = json.loads((project / "metrics" / "prepare.json").read_text())
    assert finer["tokens"] > prepared["tokens"]

    # A parameter of the BIDS dataset reruns the BIDS stages and the preparation, nothing of
    # the atlas or lesion branches.
    params["bids"]["subjects"] = 1
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert set(json.loads(_dvc(project, env, "status", "--json"))) == {"bids_sample"}
    fourth = _dvc(project, env, "repro")
    assert _ran(fourth) == {"bids_sample", "bids_to_hf", "bids_verify", "prepare"}, fourth
    fewer = json.loads((project / "metrics" / "prepare.json").read_text())
    assert 0 < fewer["images"] < finer["images"]
    assert json.loads((project / "data" / "bids_verify.json").read_text())["ok"]
    assert json.loads(_dvc(project, env, "status", "--json")) == {}
