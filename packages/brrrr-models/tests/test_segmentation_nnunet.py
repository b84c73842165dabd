"""nnU-Net v2 result folders: a tiny folder made here (plans.json and dataset.json in the
nnU-Net v2 schema, fold_0/checkpoint_final.pth holding a PlainConvUNet built by nnunetv2's own
nnUNetTrainer), checked without nnunetv2, then predicted and compared with nnU-Net's own
route (its SimpleITKIO reader on the same images written as NIfTI)."""

from __future__ import annotations

import builtins
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from brrrr.core import load_volume, save_volume
from brrrr.core.errors import MissingDependencyError
from brrrr.models.segmentation import NnUNetSegmenter, SegmentationError, load_segmenter
from brrrr.models.segmentation.nnunet import find_folds
from brrrr.models.segmentation.preprocessing import same_grid
from brrrr.models.segmentation.synthetic import synthetic_stroke_case

SPACING_ZYX = [4.0, 4.0, 4.0]


def _plans() -> dict[str, Any]:
    """A 3d_fullres plan of a 2-stage PlainConvUNet (4 and 8 features), 16³ patches at 4 mm."""
    resampling = {"order_z": 0, "force_separate_z": None}
    configuration = {
        "data_identifier": "nnUNetPlans_3d_fullres",
        "preprocessor_name": "DefaultPreprocessor",
        "batch_size": 2,
        "patch_size": [16, 16, 16],
        "median_image_size_in_voxels": [40, 48, 40],
        "spacing": SPACING_ZYX,
        "normalization_schemes": ["ZScoreNormalization", "ZScoreNormalization"],
        "use_mask_for_norm": [False, False],
        "resampling_fn_data": "resample_data_or_seg_to_shape",
        "resampling_fn_seg": "resample_data_or_seg_to_shape",
        "resampling_fn_data_kwargs": {"is_seg": False, "order": 3, **resampling},
        "resampling_fn_seg_kwargs": {"is_seg": True, "order": 1, **resampling},
        "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
        "resampling_fn_probabilities_kwargs": {"is_seg": False, "order": 1, **resampling},
        "batch_dice": False,
        "architecture": {
            "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
            "arch_kwargs": {
                "n_stages": 2,
                "features_per_stage": [4, 8],
                "conv_op": "torch.nn.modules.conv.Conv3d",
                "kernel_sizes": [[3, 3, 3], [3, 3, 3]],
                "strides": [[1, 1, 1], [2, 2, 2]],
                "n_conv_per_stage": [1, 1],
                "n_conv_per_stage_decoder": [1],
                "conv_bias": True,
                "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
                "norm_op_kwargs": {"eps": 1e-5, "affine": True},
                "dropout_op": None,
                "dropout_op_kwargs": None,
                "nonlin": "torch.nn.LeakyReLU",
                "nonlin_kwargs": {"inplace": True},
            },
            "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
        },
    }
    intensity = {"max": 1.0, "mean": 0.0, "median": 0.0, "min": 0.0, "std": 1.0}
    return {
        "dataset_name": "Dataset999_TinyStroke",
        "plans_name": "nnUNetPlans",
        "original_median_spacing_after_transp": SPACING_ZYX,
        "original_median_shape_after_transp": [40, 48, 40],
        "image_reader_writer": "SimpleITKIO",
        "transpose_forward": [0, 1, 2],
        "transpose_backward": [0, 1, 2],
        "configurations": {"3d_fullres": configuration},
        "experiment_planner_used": "ExperimentPlanner",
        "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {
            "0": {**intensity, "percentile_00_5": 0.0, "percentile_99_5": 1.0},
            "1": {**intensity, "percentile_00_5": 0.0, "percentile_99_5": 1.0},
        },
    }


DATASET = {
    "channel_names": {"0": "DWI", "1": "ADC"},
    "labels": {"background": 0, "lesion": 1},
    "numTraining": 2,
    "file_ending": ".nii.gz",
}


def _folder(root: Path, *, checkpoint: bool = True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "plans.json").write_text(json.dumps(_plans(), indent=2))
    (root / "dataset.json").write_text(json.dumps(DATASET, indent=2))
    if checkpoint:
        (root / "fold_0").mkdir(exist_ok=True)
        (root / "fold_0" / "checkpoint_final.pth").write_bytes(b"placeholder")
    return root


# -- without nnunetv2 ------------------------------------------------------------------------
def test_folder_is_read_without_nnunetv2(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "model")
    (folder / "fold_all").mkdir()
    (folder / "fold_all" / "checkpoint_final.pth").write_bytes(b"x")
    (folder / "fold_3").mkdir()  # no checkpoint: not a fold
    segmenter = NnUNetSegmenter(folder)
    assert segmenter.channels == ("dwi", "adc")
    assert segmenter.reference == "dwi"
    assert segmenter.folds == [0, "all"] == find_folds(folder)
    assert segmenter.lesion_label == 1
    assert segmenter.reader == "SimpleITKIO"
    named = NnUNetSegmenter(folder, channels=("b1000", "adc_map"), lesion_label="lesion", folds=[0])
    assert named.channels == ("b1000", "adc_map")
    assert named.folds == [0]


def test_bad_folders_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(SegmentationError, match="no such nnU-Net result folder"):
        NnUNetSegmenter(tmp_path / "missing")
    folder = _folder(tmp_path / "model", checkpoint=False)
    with pytest.raises(SegmentationError, match=r"no fold_\*/checkpoint_final.pth") as error:
        NnUNetSegmenter(folder)
    assert error.value.path == str(folder)
    _folder(folder)
    with pytest.raises(SegmentationError, match=r"fold 2 has no checkpoint_final\.pth"):
        NnUNetSegmenter(folder, folds=[2])
    with pytest.raises(SegmentationError, match="no label 'infarct'"):
        NnUNetSegmenter(folder, lesion_label="infarct")
    with pytest.raises(SegmentationError, match="not a foreground label"):
        NnUNetSegmenter(folder, lesion_label=0)
    with pytest.raises(SegmentationError, match="reads 2 channels"):
        NnUNetSegmenter(folder, channels=("dwi",))
    (folder / "plans.json").unlink()
    with pytest.raises(SegmentationError, match=r"holds plans\.json") as error:
        NnUNetSegmenter(folder)
    assert error.value.path == str(folder / "plans.json")


def test_missing_nnunetv2_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    segmenter = NnUNetSegmenter(_folder(tmp_path / "model"))
    real_import = builtins.__import__

    def no_nnunet(name: str, *args: object, **kwargs: object) -> object:
        if name.startswith("nnunetv2"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    for name in [m for m in sys.modules if m.startswith("nnunetv2")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(builtins, "__import__", no_nnunet)
    case = synthetic_stroke_case(1, shape=(20, 24, 20), spacing=8.0)
    with pytest.raises(MissingDependencyError, match=r'pip install "brrrr-models\[nnunet\]"'):
        segmenter.segment(case.inputs())


# -- with nnunetv2 ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny folder with a checkpoint of a network built by nnunetv2's trainer."""
    pytest.importorskip("nnunetv2")
    import torch
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    folder = _folder(tmp_path_factory.mktemp("nnunet") / "nnUNetTrainer__nnUNetPlans__3d_fullres")
    plans = PlansManager(_plans())
    torch.manual_seed(0)
    network = nnUNetTrainer.build_network_architecture(
        plans, plans.get_configuration("3d_fullres"), 2, 2, enable_deep_supervision=False
    )
    checkpoint = {
        "network_weights": network.state_dict(),
        "init_args": {"configuration": "3d_fullres", "fold": 0},
        "trainer_name": "nnUNetTrainer",
        "inference_allowed_mirroring_axes": [0, 1, 2],
    }
    torch.save(checkpoint, folder / "fold_0" / "checkpoint_final.pth")
    return folder


@pytest.mark.slow
def test_prediction_equals_nnunets_own_file_route(trained_folder: Path, tmp_path: Path) -> None:
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO

    # Anisotropic and LPI, so a wrong axis order or spacing would show.
    case = synthetic_stroke_case(3, shape=(30, 36, 26), spacing=(4.0, 5.0, 6.0), axcodes="LPI")
    segmenter = load_segmenter(trained_folder)
    assert isinstance(segmenter, NnUNetSegmenter)
    segmenter.use_mirroring = False
    result = segmenter.segment(case.inputs())
    assert same_grid(result.mask, case.dwi)
    assert same_grid(result.probability, case.dwi)

    paths = [
        save_volume(case.dwi, tmp_path / "case_0000.nii.gz"),
        save_volume(case.adc, tmp_path / "case_0001.nii.gz"),
    ]
    reader = SimpleITKIO()
    data, properties = reader.read_images([str(p) for p in paths])
    segmentation, probabilities = segmenter.predictor().predict_single_npy_array(
        data, properties, None, None, True
    )
    np.testing.assert_array_equal(result.probability.data, probabilities[1].transpose(2, 1, 0))
    # nnU-Net's own writer puts its segmentation on the DWI's grid, where ours is.
    reader.write_seg(segmentation, str(tmp_path / "seg.nii.gz"), properties)
    written = load_volume(tmp_path / "seg.nii.gz")
    assert same_grid(written, case.dwi)
    differ = written.data != result.mask.data
    # Only voxels within a hair of 0.5 may round the other way (argmax vs >= 0.5).
    assert not (differ & (np.abs(result.probability.data - 0.5) > 1e-3)).any()
    assert differ.sum() < 0.001 * differ.size
