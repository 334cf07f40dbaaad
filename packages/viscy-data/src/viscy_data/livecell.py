"""LIVECell phase-contrast images (TIFF files with COCO annotations) for GPU-augmented training and testing.

Needs the ``livecell`` extra (pycocotools, tifffile, torchvision), imported when a dataset is built.
"""

from __future__ import annotations

import contextlib
import io
import json
from multiprocessing.managers import DictProxy
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from viscy_data._typing import Sample
from viscy_data.gpu_aug import GPUTransformDataModule, StoredTransforms
from viscy_data.io import WORKER_CONTEXT
from viscy_data.optional import require_all
from viscy_transforms import Compose, MapTransform, Transform

__all__ = ["LiveCellDataModule", "LiveCellDataset", "LiveCellTestDataset"]

_LIVECELL_DEPENDENCIES = ("pycocotools", "tifffile", "torchvision")


def _require_livecell_dependencies(user: str) -> None:
    """Raise an ImportError naming every missing package of the ``livecell`` extra."""
    require_all(_LIVECELL_DEPENDENCIES, user, "pip install 'viscy-data[livecell]'")


def _read_image(path: Path) -> Tensor:
    """Read a single-plane TIFF as a float32 ``(1, 1, Y, X)`` tensor."""
    import tifffile

    image = tifffile.imread(path)
    if image.ndim != 2:
        raise ValueError(f"Expected a 2-D grayscale image in '{path}', got shape {image.shape}")
    return torch.from_numpy(image.astype(np.float32, copy=False))[None, None]


class LiveCellDataset(Dataset):
    """Training images, read once and kept in a cache shared between workers.

    Parameters
    ----------
    images : list[Path]
        TIFF files.
    transform : Transform | Compose
        CPU dictionary transform applied to ``{"source": (1, 1, Y, X)}``.
    cache_map : DictProxy
        Shared dictionary caching decoded images by path.
    """

    def __init__(self, images: list[Path], transform: Transform | Compose, cache_map: DictProxy) -> None:
        _require_livecell_dependencies("LiveCellDataset")
        super().__init__()
        self.images = [Path(image) for image in images]
        self.transform = transform
        self._cache_map = cache_map

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, idx: int) -> list[Sample]:
        key = str(self.images[idx])
        image = self._cache_map.get(key)
        if image is None:
            image = _read_image(self.images[idx])
            self._cache_map[key] = image
        return [self.transform(Sample(source=image))]


class LiveCellTestDataset(Dataset):
    """Test images with optional COCO instance labels.

    Parameters
    ----------
    image_dir : Path
        Folder of the TIFF files named in the annotations.
    transform : MapTransform | Compose
        Dictionary transform applied to each sample.
    annotations : Path
        COCO json of the test images.
    load_target : bool
        Also return the image as ``"target"``.
    load_labels : bool
        Also return ``"detections"`` (``boxes`` ``(N, 4)`` xyxy float32, ``labels`` ``(N,)`` uint8 zeros,
        ``masks`` ``(N, Y, X)`` bool) and ``"file_name"``.
    """

    def __init__(
        self,
        image_dir: Path,
        transform: MapTransform | Compose,
        annotations: Path,
        load_target: bool = False,
        load_labels: bool = False,
    ) -> None:
        _require_livecell_dependencies("LiveCellTestDataset")
        from pycocotools.coco import COCO

        super().__init__()
        self.image_dir = Path(image_dir)
        self.transform = transform
        with contextlib.redirect_stdout(io.StringIO()):
            self.coco = COCO(str(annotations))
        self.image_ids = list(self.coco.imgs.keys())
        self.load_target = load_target
        self.load_labels = load_labels

    def __len__(self) -> int:
        return len(self.image_ids)

    def _detections(self, image_id: int, image_shape: tuple[int, int]) -> dict[str, Tensor]:
        """Boxes, class labels and masks of every instance in one image."""
        from pycocotools import mask as mask_utils
        from torchvision.ops import box_convert

        annotations = self.coco.loadAnns(self.coco.getAnnIds(imgIds=image_id))
        boxes = torch.tensor([ann["bbox"] for ann in annotations], dtype=torch.float32).reshape(-1, 4)
        if annotations:
            masks = mask_utils.decode([self.coco.annToRLE(ann) for ann in annotations]).transpose(2, 0, 1)
        else:
            masks = np.zeros((0, *image_shape), dtype=np.uint8)
        return {
            "boxes": box_convert(boxes, in_fmt="xywh", out_fmt="xyxy"),
            "labels": torch.zeros(len(annotations), dtype=torch.uint8),
            "masks": torch.from_numpy(masks.astype(bool)),
        }

    def __getitem__(self, idx: int) -> Sample:
        image_id = self.image_ids[idx]
        file_name = self.coco.imgs[image_id]["file_name"]
        image = _read_image(self.image_dir / file_name)
        sample = {"source": image}
        if self.load_target:
            sample["target"] = image
        if self.load_labels:
            sample["detections"] = self._detections(image_id, tuple(image.shape[-2:]))
            sample["file_name"] = file_name
        return self.transform(sample)


def _existing_dir(path: Path | None, name: str) -> Path | None:
    if path is None:
        return None
    path = Path(path)
    if not path.is_dir():
        raise NotADirectoryError(f"{name} '{path}' is not a directory")
    return path


def _existing_file(path: Path | None, name: str) -> Path | None:
    if path is None:
        return None
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{name} '{path}' not found")
    return path


def _annotated_images(image_dir: Path, annotations: Path) -> list[Path]:
    """Sorted image paths named in a COCO json, all of which must exist."""
    with open(annotations) as f:
        file_names = sorted(image["file_name"] for image in json.load(f)["images"])
    if not file_names:
        raise ValueError(f"Annotations '{annotations}' list no images")
    images = [image_dir / name for name in file_names]
    missing = [str(path) for path in images if not path.is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} images of '{annotations}' are missing, e.g. {missing[:3]}")
    return images


class LiveCellDataModule(StoredTransforms, GPUTransformDataModule):
    """LIVECell images for training with GPU augmentation, and testing with instance labels.

    Parameters
    ----------
    train_val_images : Path | None
        Folder of the training and validation TIFF files.
    test_images : Path | None
        Folder of the test TIFF files.
    train_annotations, val_annotations, test_annotations : Path | None
        COCO json files listing the images (and instances, for testing).
    train_cpu_transforms, val_cpu_transforms : list[MapTransform] | None
        Per-sample transforms run in the workers.
    train_gpu_transforms, val_gpu_transforms : list[MapTransform] | None
        Batched transforms exposed for the LightningModule to run on device.
    test_transforms : list[MapTransform] | None
        Per-sample transforms of the test images.
    batch_size : int
        Samples per batch.
    num_workers : int
        Data-loading worker processes.
    pin_memory : bool
        Pin host memory of batches.
    """

    def __init__(
        self,
        train_val_images: Path | None = None,
        test_images: Path | None = None,
        train_annotations: Path | None = None,
        val_annotations: Path | None = None,
        test_annotations: Path | None = None,
        train_cpu_transforms: list[MapTransform] | None = None,
        val_cpu_transforms: list[MapTransform] | None = None,
        train_gpu_transforms: list[MapTransform] | None = None,
        val_gpu_transforms: list[MapTransform] | None = None,
        test_transforms: list[MapTransform] | None = None,
        batch_size: int = 16,
        num_workers: int = 8,
        pin_memory: bool = True,
    ) -> None:
        super().__init__()
        self.train_val_images = _existing_dir(train_val_images, "train_val_images")
        self.test_images = _existing_dir(test_images, "test_images")
        self.train_annotations = _existing_file(train_annotations, "train_annotations")
        self.val_annotations = _existing_file(val_annotations, "val_annotations")
        self.test_annotations = _existing_file(test_annotations, "test_annotations")
        self._store_transforms(train_cpu_transforms, val_cpu_transforms, train_gpu_transforms, val_gpu_transforms)
        self.test_transforms = Compose(test_transforms or [])
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.prefetch_factor = None

    def _require(self, stage: str, **paths: Path | None) -> None:
        missing = [name for name, path in paths.items() if path is None]
        if missing:
            raise ValueError(f"Stage '{stage}' of LiveCellDataModule needs {missing}")

    def setup(self, stage: str) -> None:
        """Build the datasets of a stage.

        Parameters
        ----------
        stage : str
            ``"fit"`` or ``"validate"`` (train and validation images) or ``"test"``.
        """
        if stage in ("fit", "validate"):
            self._require(
                stage,
                train_val_images=self.train_val_images,
                train_annotations=self.train_annotations,
                val_annotations=self.val_annotations,
            )
            train_images = _annotated_images(self.train_val_images, self.train_annotations)
            val_images = _annotated_images(self.train_val_images, self.val_annotations)
            cache_map = WORKER_CONTEXT.Manager().dict()
            self.train_dataset = LiveCellDataset(train_images, self.train_cpu_transforms, cache_map)
            self.val_dataset = LiveCellDataset(val_images, self.val_cpu_transforms, cache_map)
        elif stage == "test":
            self._require(stage, test_images=self.test_images, test_annotations=self.test_annotations)
            self.test_dataset = LiveCellTestDataset(
                self.test_images, self.test_transforms, self.test_annotations, load_labels=True
            )
        else:
            raise NotImplementedError(f"LiveCellDataModule does not support the '{stage}' stage")

    def test_dataloader(self) -> DataLoader:
        """Loader over the test images in annotation order."""
        return DataLoader(self.test_dataset, batch_size=self.batch_size, num_workers=self.num_workers)
