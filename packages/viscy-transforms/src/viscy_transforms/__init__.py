"""Batched, device-side image transforms for microscopy, plus MONAI wrappers with explicit signatures.

``Batched*`` transforms take 3-D ``(B, C, Z, Y, X)`` or 2-D ``(B, C, Y, X)`` tensors on any device and draw
random parameters per sample from a seeded generator (``set_random_state``). The MONAI-named dictionary
transforms used by DynaCLR (``RandAffined``, ``RandAdjustContrastd``, ``RandScaleIntensityd``,
``RandGaussianSmoothd``, ``RandGaussianNoised``, ``ScaleIntensityRangePercentilesd``) behave as MONAI on
per-sample input and switch to per-sample draws on 5-D batches.

Each name is imported from its module on first access (``lazy_loader.attach``), so ``import viscy_transforms``
imports neither torch nor MONAI; ``from viscy_transforms import BatchedRandFlip`` imports only what that transform
needs: the ``Batched*`` transforms and those that do not wrap a MONAI class import torch but not MONAI.

Beyond the transforms in ``__all__``, the package names the transform protocol they follow: ``Transform``,
``MapTransform`` and ``Randomizable`` (MONAI's protocol without MONAI; they also recognise MONAI's classes, so
``list[MapTransform]`` annotates a list of either kind) and ``Compose`` (``monai.transforms.Compose`` whose
``set_random_state`` seeds VisCy's random transforms too)."""

from importlib.metadata import PackageNotFoundError, version

import lazy_loader

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

__getattr__, __dir__, _ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "_affine": ["BatchedRandAffined"],
        "_base": ["MapTransform", "Randomizable", "Transform"],
        "_batched_noise": ["BatchedRandGaussianNoise", "BatchedRandGaussianNoised"],
        "_compose": ["Compose"],
        "_crop": [
            "BatchedCenterSpatialCrop",
            "BatchedCenterSpatialCropd",
            "BatchedRandSpatialCrop",
            "BatchedRandSpatialCropd",
        ],
        "_decollate": ["Decollate", "Decollated"],
        "_elastic": ["BatchedRand3DElasticd"],
        "_flip": ["BatchedRandFlip", "BatchedRandFlipd"],
        "_gaussian_smooth": ["BatchedRandGaussianSmooth", "BatchedRandGaussianSmoothd"],
        "_histogram_shift": ["BatchedRandHistogramShiftd"],
        "_intensity": [
            "BatchedRandAdjustContrast",
            "BatchedRandAdjustContrastd",
            "BatchedRandScaleIntensity",
            "BatchedRandScaleIntensityd",
        ],
        "_invert": ["RandInvertIntensityd"],
        "_monai_batched_wrappers": [
            "RandAdjustContrastd",
            "RandAffined",
            "RandGaussianNoised",
            "RandGaussianSmoothd",
            "RandScaleIntensityd",
            "ScaleIntensityRangePercentilesd",
        ],
        "_monai_wrappers": [
            "CenterSpatialCropd",
            "NormalizeIntensityd",
            "RandFlipd",
            "RandSpatialCropd",
            "RandWeightedCropd",
            "ToDeviced",
        ],
        "_noise": ["RandGaussianNoiseTensor", "RandGaussianNoiseTensord"],
        "_normalize": ["NormalizeSampled"],
        "_percentiles": ["BatchedScaleIntensityRangePercentiles", "BatchedScaleIntensityRangePercentilesd"],
        "_pixel_shuffle": ["BatchedRandLocalPixelShufflingd"],
        "_sharpen": ["BatchedRandSharpend"],
        "_stack_channels": ["StackChannelsd"],
        "_tiled_crop": ["TiledSpatialCropSamplesd"],
        "_zoom": ["BatchedZoom", "BatchedZoomd"],
        "_zstack_shift": ["BatchedRandZStackShiftd"],
    },
)
