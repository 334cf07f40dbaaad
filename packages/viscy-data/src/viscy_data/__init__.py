"""Data loading and Lightning DataModules for virtual staining and contrastive learning microscopy.

Datasets read OME-Zarr HCS plates (``row/col/fov`` positions, array ``"0"`` in TCZYX order) with iohub
and tensorstore. Public names are imported lazily on first access, so ``import viscy_data`` is fast and
needs none of the optional extras:

- ``pip install 'viscy-data[triplet]'`` (pandas, tensorstore) for ``TripletDataModule``,
- ``pip install 'viscy-data[livecell]'`` (pycocotools, tifffile, torchvision) for the LiveCell modules,
- ``pip install 'viscy-data[mmap]'`` (tensordict) for ``MmappedDataModule``,
- ``pip install 'viscy-data[all]'`` for everything.

The installed version is ``importlib.metadata.version("viscy-data")``.
"""

import lazy_loader

__all__ = [
    # Types
    "AnnotationColumns",
    "ChannelMap",
    "ChannelNormStats",
    "DictTransform",
    "HCSStackIndex",
    "INDEX_COLUMNS",
    "LABEL_CELL_CYCLE_STATE",
    "LABEL_CELL_DIVISION_STATE",
    "LABEL_CELL_REMODELING_STATE",
    "LABEL_INFECTION_STATE",
    "LevelNormStats",
    "NormMeta",
    "OneOrSeq",
    "Sample",
    "SegmentationSample",
    "TrackingIndex",
    "TripletSample",
    # Augmentation
    "ChannelDropout",
    # Utilities
    "FlexibleBatchSampler",
    "SelectWell",
    "ShardedDistributedSampler",
    # Core
    "HCSDataModule",
    "MaskTestDataset",
    "SlidingWindowDataset",
    # GPU augmentation
    "CachedOmeZarrDataModule",
    "CachedOmeZarrDataset",
    "GPUTransformDataModule",
    # Triplet
    "TripletDataModule",
    "TripletDataset",
    # Cell classification
    "ClassificationDataModule",
    "ClassificationDataset",
    # Cell division
    "CellDivisionTripletDataModule",
    "CellDivisionTripletDataset",
    # Memory-mapped cache
    "MmappedDataModule",
    "MmappedDataset",
    # LiveCell
    "LiveCellDataModule",
    "LiveCellDataset",
    "LiveCellTestDataset",
    # CTMC
    "CTMCv1DataModule",
    # Segmentation
    "SegmentationDataModule",
    "SegmentationDataset",
    # Combined
    "BatchedConcatDataModule",
    "BatchedConcatDataset",
    "CachedConcatDataModule",
    "CombinedDataModule",
    "CombineMode",
    "ConcatDataModule",
]

_SUBMODULE_NAMES = {
    "_typing": __all__[:17],
    "channel_dropout": ["ChannelDropout"],
    "sampler": ["FlexibleBatchSampler"],
    "select": ["SelectWell"],
    "distributed": ["ShardedDistributedSampler"],
    "hcs": ["HCSDataModule", "MaskTestDataset", "SlidingWindowDataset"],
    "gpu_aug": ["CachedOmeZarrDataModule", "CachedOmeZarrDataset", "GPUTransformDataModule"],
    "triplet": ["TripletDataModule", "TripletDataset"],
    "cell_classification": ["ClassificationDataModule", "ClassificationDataset"],
    "cell_division_triplet": ["CellDivisionTripletDataModule", "CellDivisionTripletDataset"],
    "mmap_cache": ["MmappedDataModule", "MmappedDataset"],
    "livecell": ["LiveCellDataModule", "LiveCellDataset", "LiveCellTestDataset"],
    "ctmc_v1": ["CTMCv1DataModule"],
    "segmentation": ["SegmentationDataModule", "SegmentationDataset"],
    "combined": [
        "BatchedConcatDataModule",
        "BatchedConcatDataset",
        "CachedConcatDataModule",
        "CombinedDataModule",
        "CombineMode",
        "ConcatDataModule",
    ],
}

__getattr__, __dir__, _ = lazy_loader.attach(__name__, submod_attrs=_SUBMODULE_NAMES)
