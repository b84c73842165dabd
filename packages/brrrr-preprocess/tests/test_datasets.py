"""Tests of brrrr.preprocess.neurovfm.datasets (ImageDataset, study labels) with the sampler and collate."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Literal

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from brrrr.core import samples, save_volume
from brrrr.preprocess.errors import DatasetError
from brrrr.preprocess.neurovfm.cache import CacheManager
from brrrr.preprocess.neurovfm.collate import collate_tokens
from brrrr.preprocess.neurovfm.datasets import ImageDataset, load_study_labels
from brrrr.preprocess.neurovfm.metadata import DatasetMetadata
from brrrr.preprocess.neurovfm.prepare import load_image, prepare_for_inference
from brrrr.preprocess.neurovfm.sampler import StudyAwareBatchSampler
from brrrr.preprocess.neurovfm.settings import CT_WINDOWS
from brrrr.preprocess.neurovfm.tokenize import untokenize

SHAPE = (16, 16, 8)
SPACING = (4.0, 4.0, 8.0)
KEYS = {"img", "coords", "filtered", "size", "path", "label", "study", "mode", "window"}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five studies of 1–3 images (MRI, and CT in studies c and e), cached."""
    root = tmp_path_factory.mktemp("dataset")
    layout = {"a": 2, "b": 1, "c": 3, "d": 1, "e": 2}
    seed = 0
    for study, n in layout.items():
        (root / "raw" / study).mkdir(parents=True)
        for i in range(n):
            seed += 1
            modality: Literal["t1", "ct"] = "ct" if study in "ce" else "t1"
            shape = (SHAPE[0] + 4 * (seed % 3), SHAPE[1], SHAPE[2])  # token counts differ
            vol = samples.phantom(shape=shape, spacing=SPACING, modality=modality, seed=seed)
            save_volume(vol, root / "raw" / study / f"img{i}.nii.gz")
    DatasetMetadata.from_directory(root, {"c": "ct", "e": "ct", "*": "mri"}).save(
        root / "metadata.json"
    )
    CacheManager(root).build(num_workers=0, progress="none")
    return root


def test_items_are_neurovfm_dicts(root: Path) -> None:
    dataset = ImageDataset(root)
    assert len(dataset) == 9
    assert dataset.study_ids == ["a", "a", "b", "c", "c", "c", "d", "e", "e"]
    for index in (0, 3):
        item = dataset[index]
        assert set(item) == KEYS
        n = int(item["size"].prod())
        assert item["img"].shape == (n, 1024)
        assert item["img"].dtype == torch.float32
        assert float(item["img"].min()) >= 0.0
        assert float(item["img"].max()) <= 1.0
        assert item["coords"].shape == (n, 3)
        assert item["coords"].dtype == torch.int32
        assert item["filtered"].shape == (n,)
        assert item["filtered"].dtype == torch.uint8
        assert item["size"].dtype == torch.int32
        assert Path(item["path"]).is_file()
        assert item["label"] == -1
    assert dataset[0]["mode"] == "mri"
    assert dataset[0]["window"] is None
    assert dataset[3]["mode"] == "ct"
    assert dataset[3]["window"] in ("brain", "blood", "bone")
    assert dataset.token_counts[0] == int(dataset[0]["size"].prod())


def test_tokens_are_the_cached_volume(root: Path) -> None:
    dataset = ImageDataset(root, ct_window_probs=(0.0, 1.0, 0.0))
    item = dataset[4]
    assert item["window"] == "blood"
    entry = CacheManager(root).load_image("c", "img1", window="blood")
    volume = untokenize(item["img"].numpy(), item["coords"].numpy(), item["size"].numpy())
    np.testing.assert_allclose(volume, entry.data / 255.0, atol=1e-6)
    background = untokenize(
        item["filtered"].numpy()[:, None].repeat(1024, 1),
        item["coords"].numpy(),
        item["size"].numpy(),
    )
    # "all" rule: a token is background only if it holds no foreground voxel.
    assert not (background.astype(bool) & entry.mask.astype(bool)).any()


def test_cache_and_on_the_fly_agree_to_quantisation(root: Path) -> None:
    cached = ImageDataset(root, ct_window_probs=(1.0, 0.0, 0.0))
    fresh = ImageDataset(root, use_cache=False, ct_window_probs=(1.0, 0.0, 0.0))
    for index in (1, 7):
        a, b = cached[index], fresh[index]
        assert a["window"] == b["window"]
        torch.testing.assert_close(a["img"], b["img"], atol=0.5 / 255 + 1e-6, rtol=0)
        assert torch.equal(a["filtered"], b["filtered"])
    with pytest.raises(DatasetError, match="needs the cache"):
        _ = fresh.token_counts


def test_on_the_fly_volumes_are_load_image_then_prepare(root: Path) -> None:
    dataset = ImageDataset(root, use_cache=False, tokenize=False, ct_window_probs=(0, 0, 1))
    for index in (0, 3):  # MRI, CT
        item = dataset[index]
        record = dataset.images[index]
        img, mask, _ = prepare_for_inference(load_image(item["path"]), mode=record.mode)
        channel = 0 if record.mode == "mri" else list(CT_WINDOWS).index("bone")
        assert torch.equal(item["img"][0], torch.from_numpy(img[channel]))
        assert torch.equal(item["mask"], torch.from_numpy(mask.astype(np.uint8)))


def test_window_draws_follow_probabilities_and_torch_seed(root: Path) -> None:
    dataset = ImageDataset(root, ct_window_probs=(0.5, 0.0, 0.5))
    torch.manual_seed(0)
    first = [dataset[3]["window"] for _ in range(40)]
    torch.manual_seed(0)
    assert [dataset[3]["window"] for _ in range(40)] == first
    assert set(first) == {"brain", "bone"}
    with pytest.raises(DatasetError, match="ct_window_probs"):
        ImageDataset(root, ct_window_probs=(0.5, 0.5, 0.5))


def test_random_crop_and_augment(root: Path) -> None:
    full = ImageDataset(root)[2]
    cropped = ImageDataset(root, random_crop=True, max_crop_tokens=(2, 2, 3))
    torch.manual_seed(1)
    for _ in range(10):
        item = cropped[2]
        size = item["size"].tolist()
        assert all(s <= m for s, m in zip(size, (2, 2, 3), strict=True))
        assert item["img"].shape[0] == int(np.prod(size)) == item["coords"].shape[0]
        assert (item["coords"].max(0).values < item["size"]).all()
        assert (item["filtered"] == 0).float().mean() > 0.1
    augmented = ImageDataset(root, augment=True)
    torch.manual_seed(2)
    sizes = set()
    for _ in range(8):
        item = augmented[2]
        sizes.add(tuple(item["size"].tolist()))
        # Flips and transposes move voxels, never change them.
        torch.testing.assert_close(item["img"].sum(), full["img"].sum())
    d, h, w = full["size"].tolist()
    assert sizes <= {(d, h, w), (d, w, h)}


def test_untokenised_items(root: Path) -> None:
    item = ImageDataset(root, tokenize=False)[0]
    d, h, w = (item["size"] * torch.tensor([4, 16, 16])).tolist()
    assert item["img"].shape == (1, d, h, w)
    assert item["mask"].shape == (d, h, w)
    assert "coords" not in item


def test_study_labels_from_csv_and_json(root: Path, tmp_path: Path) -> None:
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text("study_id,tumour,stroke\na,1,0\nc,0,1\nd,1,1\n")
    dataset = ImageDataset(root, study_labels=csv_path)
    assert dataset.label_names == ["tumour", "stroke"]
    assert dataset[0]["label"] == [1, 0]
    assert dataset[2]["label"] == [-1, -1]  # study b has no row
    json_path = tmp_path / "labels.json"
    json_path.write_text(json.dumps({"a": 2, "b": 0.5}))
    assert ImageDataset(root, study_labels=json_path)[2]["label"] == 0.5
    assert ImageDataset(root, study_labels={"d": 3})[6]["label"] == 3
    single = tmp_path / "single.csv"
    single.write_text("study,label\na,1\n")
    assert load_study_labels(single) == ({"a": 1}, ["label"])
    bad = tmp_path / "bad.csv"
    bad.write_text("study,label\na,yes\n")
    with pytest.raises(DatasetError, match=r"bad.csv: line 2: 'yes' is not a number"):
        load_study_labels(bad)
    bad.write_text("study,label\na,1\na,0\n")
    with pytest.raises(DatasetError, match="appears twice"):
        load_study_labels(bad)
    (tmp_path / "labels.txt").write_text("")
    with pytest.raises(DatasetError, match=r"\.csv or \.json"):
        load_study_labels(tmp_path / "labels.txt")


def test_dataloader_with_study_sampler_and_collate(root: Path) -> None:
    dataset = ImageDataset(root, study_labels={"a": 1, "b": 0, "c": 1, "d": 0, "e": 1})
    counts = dataset.token_counts
    budget = 3 * max(counts)
    sampler = StudyAwareBatchSampler(dataset, 4, seed=0, max_tokens=budget)
    loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=collate_tokens)
    seen: Counter[str] = Counter()
    for batch_indices, batch in zip(sampler, loader, strict=True):
        studies = set(batch["study"])
        assert Counter(batch["study"]) == {s: dataset.study_ids.count(s) for s in studies}
        assert batch["seqlens"].tolist() == [counts[i] for i in batch_indices]
        assert batch["img"].shape[:2] == batch["padding_mask"].shape
        assert batch["label"].shape == (len(batch_indices),)
        seen.update(batch["path"])
    assert len(seen) == len(dataset)
    assert set(seen.values()) == {1}
    assert len(loader) == len(sampler)
