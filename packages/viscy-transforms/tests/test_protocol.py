"""VisCy's MONAI-free base classes follow MONAI's transform protocol and interoperate with MONAI."""

import subprocess
import sys

import monai.transforms as mt
import numpy as np
import pytest
import torch
from jsonargparse import ArgumentParser

import viscy_transforms as vt

# transforms that do not wrap a MONAI class: importing them must not import MONAI
MONAI_FREE = [
    "BatchedCenterSpatialCropd",
    "BatchedRandSpatialCropd",
    "BatchedRand3DElasticd",
    "BatchedRandAdjustContrastd",
    "BatchedRandAffined",
    "BatchedRandFlipd",
    "BatchedRandGaussianNoised",
    "BatchedRandGaussianSmoothd",
    "BatchedRandHistogramShiftd",
    "BatchedRandLocalPixelShufflingd",
    "BatchedRandScaleIntensityd",
    "BatchedRandSharpend",
    "BatchedRandZStackShiftd",
    "BatchedScaleIntensityRangePercentilesd",
    "BatchedZoomd",
    "MapTransform",
    "NormalizeSampled",
    "RandInvertIntensityd",
    "Randomizable",
    "StackChannelsd",
]


def _batch(seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {
        "a": torch.rand((4, 1, 2, 8, 8), generator=generator),
        "b": torch.rand((4, 1, 2, 8, 8), generator=generator),
    }


def _pipeline(compose: type) -> mt.Compose:
    return compose(
        [
            vt.BatchedRandFlipd(keys=["a", "b"], spatial_axes=[1, 2], prob=0.5),
            vt.BatchedRandScaleIntensityd(keys=["a"], factors=0.5, prob=0.8),
            mt.RandGaussianNoised(keys=["b"], prob=1.0, std=0.3),
            vt.BatchedRandGaussianNoised(keys=["a"], prob=0.7, std=0.2),
        ]
    )


def test_transforms_that_do_not_wrap_monai_do_not_import_it():
    code = (
        f"import sys, viscy_transforms as vt; [getattr(vt, n) for n in {MONAI_FREE!r}]; print('monai' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_monai_compose_runs_viscy_transforms():
    out = _pipeline(mt.Compose)(_batch())
    assert set(out) == {"a", "b"} and out["a"].shape == (4, 1, 2, 8, 8)
    assert not torch.equal(out["a"], _batch()["a"])


def test_compose_set_random_state_seeds_every_random_transform_reproducibly():
    pipeline = _pipeline(vt.Compose)
    first = pipeline.set_random_state(5)(_batch())
    second = pipeline.set_random_state(5)(_batch())
    third = pipeline.set_random_state(6)(_batch())
    for key in ("a", "b"):
        torch.testing.assert_close(first[key], second[key], rtol=0, atol=0)
    assert not torch.equal(first["a"], third["a"])
    # every transform, MONAI's and VisCy's, is back on the generator it had right after seeding
    pipeline.set_random_state(5)
    states = [t.R.get_state()[1][:3].tolist() for t in pipeline.transforms]
    pipeline(_batch())
    pipeline.set_random_state(5)
    assert [t.R.get_state()[1][:3].tolist() for t in pipeline.transforms] == states


def test_compose_draws_the_same_seeds_as_monai_for_monai_pipelines():
    def transforms():
        return [mt.RandGaussianNoised(keys=["a"], prob=1.0), mt.RandScaleIntensityd(keys=["a"], factors=0.5, prob=1)]

    ours = vt.Compose(transforms()).set_random_state(3)(_batch())
    reference = mt.Compose(transforms()).set_random_state(3)(_batch())
    torch.testing.assert_close(ours["a"], reference["a"], rtol=0, atol=0)


def test_set_random_state_matches_monai_seeding():
    ours, theirs = vt.BatchedRandFlip(spatial_axes=[0], prob=0.5), mt.RandFlip(prob=0.5)
    for seed in (0, 7, 2**32 + 3):
        ours.set_random_state(seed)
        theirs.set_random_state(seed)
        np.testing.assert_array_equal(ours.R.random_sample(5), theirs.R.random_sample(5))
    state = np.random.RandomState(11)
    assert ours.set_random_state(state=state).R is state
    with pytest.raises(TypeError, match="RandomState"):
        ours.set_random_state(state=11)


def test_keys_and_allow_missing_keys_semantics_match_monai():
    ours = vt.BatchedRandFlipd(keys="a", prob=1.0)
    assert ours.keys == mt.RandFlipd(keys="a").keys == ("a",)
    with pytest.raises(KeyError, match="`b`"):
        vt.BatchedRandFlipd(keys=["a", "b"], prob=1.0)({"a": torch.zeros(2, 1, 2, 4, 4)})
    skipping = vt.BatchedRandFlipd(keys=["a", "b"], prob=1.0, allow_missing_keys=True)
    data = {"a": torch.zeros(2, 1, 2, 4, 4), "c": 1}
    assert list(skipping.key_iterator(data)) == list(
        mt.RandFlipd(["a", "b"], allow_missing_keys=True).key_iterator(data)
    )
    assert skipping(data)["c"] == 1
    with pytest.raises(ValueError, match="non empty"):
        vt.BatchedRandFlipd(keys=[], prob=1.0)


def test_base_classes_recognise_monai_transforms_and_annotate_config_lists():
    assert issubclass(mt.RandFlipd, vt.MapTransform) and isinstance(mt.RandFlipd(keys="a"), vt.Randomizable)
    assert issubclass(vt.BatchedRandFlipd, vt.MapTransform) and issubclass(vt.BatchedRandFlip, vt.Randomizable)
    assert not issubclass(mt.RandFlip, vt.MapTransform) and not issubclass(mt.Identityd, vt.Randomizable)
    assert not issubclass(mt.RandFlipd, vt.BatchedRandFlipd)
    parser = ArgumentParser()
    parser.add_argument("--transforms", type=list[vt.MapTransform])
    config = parser.parse_string(
        "transforms:\n"
        "  - {class_path: monai.transforms.RandFlipd, init_args: {keys: [a]}}\n"
        "  - {class_path: viscy_transforms.BatchedRandFlipd, init_args: {keys: [a], prob: 0.5}}\n"
    )
    transforms = parser.instantiate(config).transforms
    assert [type(t) for t in transforms] == [mt.RandFlipd, vt.BatchedRandFlipd]
