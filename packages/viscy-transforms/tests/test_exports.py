"""The public surface: the 44 exported names, explicit signatures and the version."""

import inspect

import pytest

import viscy_transforms

SPEC_NAMES = {
    "BatchedCenterSpatialCrop",
    "BatchedCenterSpatialCropd",
    "BatchedRandSpatialCrop",
    "BatchedRandSpatialCropd",
    "BatchedRandAdjustContrast",
    "BatchedRandAdjustContrastd",
    "BatchedRandAffined",
    "BatchedRand3DElasticd",
    "BatchedRandFlip",
    "BatchedRandFlipd",
    "BatchedRandGaussianSmooth",
    "BatchedRandGaussianSmoothd",
    "BatchedRandGaussianNoise",
    "BatchedRandGaussianNoised",
    "BatchedRandHistogramShiftd",
    "BatchedRandLocalPixelShufflingd",
    "BatchedRandScaleIntensity",
    "BatchedRandScaleIntensityd",
    "BatchedRandSharpend",
    "BatchedRandZStackShiftd",
    "BatchedScaleIntensityRangePercentiles",
    "BatchedScaleIntensityRangePercentilesd",
    "BatchedZoom",
    "BatchedZoomd",
    "CenterSpatialCropd",
    "Decollate",
    "Decollated",
    "NormalizeSampled",
    "NormalizeIntensityd",
    "RandAdjustContrastd",
    "RandAffined",
    "RandFlipd",
    "RandGaussianNoised",
    "RandGaussianNoiseTensor",
    "RandGaussianNoiseTensord",
    "RandGaussianSmoothd",
    "RandInvertIntensityd",
    "RandScaleIntensityd",
    "RandSpatialCropd",
    "RandWeightedCropd",
    "ScaleIntensityRangePercentilesd",
    "StackChannelsd",
    "TiledSpatialCropSamplesd",
    "ToDeviced",
}


def test_all_lists_exactly_the_44_spec_names():
    assert len(viscy_transforms.__all__) == 44
    assert set(viscy_transforms.__all__) == SPEC_NAMES
    assert all(inspect.isclass(getattr(viscy_transforms, name)) for name in viscy_transforms.__all__)


def test_version_is_a_string():
    assert isinstance(viscy_transforms.__version__, str) and viscy_transforms.__version__


@pytest.mark.parametrize("name", sorted(SPEC_NAMES))
def test_constructor_signature_is_explicit(name):
    """jsonargparse reads named parameters: no exported constructor hides arguments in ``**kwargs``."""
    parameters = inspect.signature(getattr(viscy_transforms, name).__init__).parameters.values()
    assert all(p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) for p in parameters)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("BatchedCenterSpatialCropd", {"allow_missing_keys": False}),
        ("BatchedRandAdjustContrast", {"gamma": (0.5, 4.5), "prob": 0.1, "invert_image": False}),
        ("BatchedRandAffined", {"prob": 0.1, "rotate_range": None, "mode": "bilinear"}),
        ("BatchedRandFlipd", {"spatial_axes": (0, 1, 2), "prob": 0.5}),
        ("BatchedRandGaussianSmooth", {"sigma_x": (1.0, 3.0), "truncated": 4.0, "prob": 0.5}),
        ("BatchedRandGaussianNoised", {"prob": 0.1, "mean": 0.0, "std": 0.1, "sample_std": True}),
        ("BatchedRandSpatialCrop", {"max_roi_size": None, "random_center": True, "random_size": False}),
        ("BatchedRandZStackShiftd", {"max_shift": 3, "prob": 0.1, "mode": "constant", "cval": 0.0}),
        ("NormalizeSampled", {"subtrahend": "mean", "divisor": "std", "remove_meta": False}),
        ("RandInvertIntensityd", {"prob": 0.1, "allow_missing_keys": False}),
        ("ScaleIntensityRangePercentilesd", {"clip": False, "relative": False, "dtype": None}),
        ("Decollate", {"detach": True, "pad_batch": True, "fill_value": None}),
    ],
)
def test_spec_defaults(name, expected):
    parameters = inspect.signature(getattr(viscy_transforms, name).__init__).parameters
    for parameter, default in expected.items():
        actual = parameters[parameter].default
        assert (tuple(actual) if isinstance(default, tuple) else actual) == default, parameter


def test_required_parameters_of_dynaclr_wrappers():
    """The MONAI-named wrappers keep the original required arguments."""
    required = {
        "RandAffined": ["keys", "prob", "rotate_range", "shear_range", "scale_range"],
        "RandAdjustContrastd": ["keys", "prob", "gamma"],
        "RandScaleIntensityd": ["keys", "factors", "prob"],
        "RandGaussianSmoothd": ["keys", "prob", "sigma_x", "sigma_y", "sigma_z"],
        "RandGaussianNoised": ["keys", "prob", "mean", "std"],
        "ScaleIntensityRangePercentilesd": ["keys", "lower", "upper", "b_min", "b_max"],
        "BatchedCenterSpatialCropd": ["keys", "roi_size"],
    }
    for name, names in required.items():
        parameters = inspect.signature(getattr(viscy_transforms, name).__init__).parameters
        assert [n for n, p in parameters.items() if n != "self" and p.default is p.empty] == names, name
