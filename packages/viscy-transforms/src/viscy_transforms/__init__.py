"""Batched, device-side image transforms for microscopy, plus MONAI wrappers with explicit signatures.

``Batched*`` transforms take 3-D ``(B, C, Z, Y, X)`` or 2-D ``(B, C, Y, X)`` tensors on any device and draw
random parameters per sample from a seeded generator (``set_random_state``). The MONAI-named dictionary
transforms used by DynaCLR (``RandAffined``, ``RandAdjustContrastd``, ``RandScaleIntensityd``,
``RandGaussianSmoothd``, ``RandGaussianNoised``, ``ScaleIntensityRangePercentilesd``) behave as MONAI on
per-sample input and switch to per-sample draws on 5-D batches.

Each name is imported from its module on first access, so ``import viscy_transforms`` imports neither
torch nor MONAI; ``from viscy_transforms import BatchedRandFlip`` imports only what that transform needs."""

from importlib.metadata import PackageNotFoundError, version

from viscy_transforms.lazy import lazy_exports

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

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "BatchedCenterSpatialCrop": "._crop",
        "BatchedCenterSpatialCropd": "._crop",
        "BatchedRand3DElasticd": "._elastic",
        "BatchedRandAdjustContrast": "._intensity",
        "BatchedRandAdjustContrastd": "._intensity",
        "BatchedRandAffined": "._affine",
        "BatchedRandFlip": "._flip",
        "BatchedRandFlipd": "._flip",
        "BatchedRandGaussianNoise": "._noise",
        "BatchedRandGaussianNoised": "._noise",
        "BatchedRandGaussianSmooth": "._gaussian_smooth",
        "BatchedRandGaussianSmoothd": "._gaussian_smooth",
        "BatchedRandHistogramShiftd": "._histogram_shift",
        "BatchedRandLocalPixelShufflingd": "._pixel_shuffle",
        "BatchedRandScaleIntensity": "._intensity",
        "BatchedRandScaleIntensityd": "._intensity",
        "BatchedRandSharpend": "._sharpen",
        "BatchedRandSpatialCrop": "._crop",
        "BatchedRandSpatialCropd": "._crop",
        "BatchedRandZStackShiftd": "._zstack_shift",
        "BatchedScaleIntensityRangePercentiles": "._percentiles",
        "BatchedScaleIntensityRangePercentilesd": "._percentiles",
        "BatchedZoom": "._zoom",
        "BatchedZoomd": "._zoom",
        "CenterSpatialCropd": "._monai_wrappers",
        "Decollate": "._decollate",
        "Decollated": "._decollate",
        "NormalizeIntensityd": "._monai_wrappers",
        "NormalizeSampled": "._normalize",
        "RandAdjustContrastd": "._monai_batched_wrappers",
        "RandAffined": "._monai_batched_wrappers",
        "RandFlipd": "._monai_wrappers",
        "RandGaussianNoiseTensor": "._noise",
        "RandGaussianNoiseTensord": "._noise",
        "RandGaussianNoised": "._monai_batched_wrappers",
        "RandGaussianSmoothd": "._monai_batched_wrappers",
        "RandInvertIntensityd": "._invert",
        "RandScaleIntensityd": "._monai_batched_wrappers",
        "RandSpatialCropd": "._monai_wrappers",
        "RandWeightedCropd": "._monai_wrappers",
        "ScaleIntensityRangePercentilesd": "._monai_batched_wrappers",
        "StackChannelsd": "._stack_channels",
        "TiledSpatialCropSamplesd": "._tiled_crop",
        "ToDeviced": "._monai_wrappers",
    },
)
