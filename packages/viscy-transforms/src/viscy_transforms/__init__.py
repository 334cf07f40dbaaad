"""Batched, device-side image transforms for microscopy, plus MONAI wrappers with explicit signatures.

``Batched*`` transforms take 3-D ``(B, C, Z, Y, X)`` or 2-D ``(B, C, Y, X)`` tensors on any device and draw
random parameters per sample from a seeded generator (``set_random_state``). The MONAI-named dictionary
transforms used by DynaCLR (``RandAffined``, ``RandAdjustContrastd``, ``RandScaleIntensityd``,
``RandGaussianSmoothd``, ``RandGaussianNoised``, ``ScaleIntensityRangePercentilesd``) behave as MONAI on
per-sample input and switch to per-sample draws on 5-D batches."""

from importlib.metadata import PackageNotFoundError, version

from viscy_transforms._affine import BatchedRandAffined
from viscy_transforms._crop import (
    BatchedCenterSpatialCrop,
    BatchedCenterSpatialCropd,
    BatchedRandSpatialCrop,
    BatchedRandSpatialCropd,
)
from viscy_transforms._decollate import Decollate, Decollated
from viscy_transforms._elastic import BatchedRand3DElasticd
from viscy_transforms._flip import BatchedRandFlip, BatchedRandFlipd
from viscy_transforms._gaussian_smooth import BatchedRandGaussianSmooth, BatchedRandGaussianSmoothd
from viscy_transforms._histogram_shift import BatchedRandHistogramShiftd
from viscy_transforms._intensity import (
    BatchedRandAdjustContrast,
    BatchedRandAdjustContrastd,
    BatchedRandScaleIntensity,
    BatchedRandScaleIntensityd,
)
from viscy_transforms._invert import RandInvertIntensityd
from viscy_transforms._monai_batched_wrappers import (
    RandAdjustContrastd,
    RandAffined,
    RandGaussianNoised,
    RandGaussianSmoothd,
    RandScaleIntensityd,
    ScaleIntensityRangePercentilesd,
)
from viscy_transforms._monai_wrappers import (
    CenterSpatialCropd,
    NormalizeIntensityd,
    RandFlipd,
    RandSpatialCropd,
    RandWeightedCropd,
    ToDeviced,
)
from viscy_transforms._noise import (
    BatchedRandGaussianNoise,
    BatchedRandGaussianNoised,
    RandGaussianNoiseTensor,
    RandGaussianNoiseTensord,
)
from viscy_transforms._normalize import NormalizeSampled
from viscy_transforms._percentiles import (
    BatchedScaleIntensityRangePercentiles,
    BatchedScaleIntensityRangePercentilesd,
)
from viscy_transforms._pixel_shuffle import BatchedRandLocalPixelShufflingd
from viscy_transforms._sharpen import BatchedRandSharpend
from viscy_transforms._stack_channels import StackChannelsd
from viscy_transforms._tiled_crop import TiledSpatialCropSamplesd
from viscy_transforms._zoom import BatchedZoom, BatchedZoomd
from viscy_transforms._zstack_shift import BatchedRandZStackShiftd

try:
    __version__ = version("viscy-transforms")
except PackageNotFoundError:
    __version__ = "0.0.0"

__all__ = [
    "BatchedCenterSpatialCrop",
    "BatchedCenterSpatialCropd",
    "BatchedRand3DElasticd",
    "BatchedRandAdjustContrast",
    "BatchedRandAdjustContrastd",
    "BatchedRandAffined",
    "BatchedRandFlip",
    "BatchedRandFlipd",
    "BatchedRandGaussianNoise",
    "BatchedRandGaussianNoised",
    "BatchedRandGaussianSmooth",
    "BatchedRandGaussianSmoothd",
    "BatchedRandHistogramShiftd",
    "BatchedRandLocalPixelShufflingd",
    "BatchedRandScaleIntensity",
    "BatchedRandScaleIntensityd",
    "BatchedRandSharpend",
    "BatchedRandSpatialCrop",
    "BatchedRandSpatialCropd",
    "BatchedRandZStackShiftd",
    "BatchedScaleIntensityRangePercentiles",
    "BatchedScaleIntensityRangePercentilesd",
    "BatchedZoom",
    "BatchedZoomd",
    "CenterSpatialCropd",
    "Decollate",
    "Decollated",
    "NormalizeIntensityd",
    "NormalizeSampled",
    "RandAdjustContrastd",
    "RandAffined",
    "RandFlipd",
    "RandGaussianNoiseTensor",
    "RandGaussianNoiseTensord",
    "RandGaussianNoised",
    "RandGaussianSmoothd",
    "RandInvertIntensityd",
    "RandScaleIntensityd",
    "RandSpatialCropd",
    "RandWeightedCropd",
    "ScaleIntensityRangePercentilesd",
    "StackChannelsd",
    "TiledSpatialCropSamplesd",
    "ToDeviced",
]
