import json
import sys

import numpy as np
import pytest
import tifffile
import torch
from monai.transforms import Lambdad
from pycocotools import mask as mask_utils

from viscy_data.livecell import LiveCellDataModule, LiveCellDataset, LiveCellTestDataset

SHAPE = (20, 24)


def _double(x):
    return x * 2


def _rectangle_mask(y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    mask = np.zeros(SHAPE, dtype=np.uint8)
    mask[y0:y1, x0:x1] = 1
    return mask


def _write_split(root, name: str, n_images: int, seed: int) -> tuple[dict[str, np.ndarray], dict]:
    """Write ``n_images`` TIFFs and a COCO json whose first image has one RLE and one polygon instance."""
    rng = np.random.default_rng(seed)
    images, coco_images, annotations = {}, [], []
    for image_id in range(n_images):
        file_name = f"{name}_{image_id:02d}.tif"
        images[file_name] = rng.integers(0, 4000, size=SHAPE).astype(np.uint16)
        tifffile.imwrite(root / "images" / file_name, images[file_name])
        coco_images.append({"id": image_id + 10, "file_name": file_name, "height": SHAPE[0], "width": SHAPE[1]})
    rle = mask_utils.encode(np.asfortranarray(_rectangle_mask(2, 7, 3, 11)))
    annotations.append(
        {
            "id": 1,
            "image_id": 10,
            "category_id": 1,
            "bbox": [3.0, 2.0, 8.0, 5.0],
            "segmentation": {"size": rle["size"], "counts": rle["counts"].decode()},
            "area": 40.0,
            "iscrowd": 0,
        }
    )
    annotations.append(
        {
            "id": 2,
            "image_id": 10,
            "category_id": 1,
            "bbox": [12.0, 10.0, 6.0, 6.0],
            "segmentation": [[12.0, 10.0, 18.0, 10.0, 18.0, 16.0, 12.0, 16.0]],
            "area": 36.0,
            "iscrowd": 0,
        }
    )
    coco = {"images": coco_images[::-1], "annotations": annotations, "categories": [{"id": 1, "name": "cell"}]}
    with open(root / f"{name}.json", "w") as f:
        json.dump(coco, f)
    return images, coco


@pytest.fixture
def livecell(tmp_path):
    (tmp_path / "images").mkdir()
    train, _ = _write_split(tmp_path, "train", 5, seed=0)
    val, _ = _write_split(tmp_path, "val", 2, seed=1)
    test, _ = _write_split(tmp_path, "test", 3, seed=2)
    return tmp_path, {**train, **val, **test}


def test_test_dataset_reads_images_boxes_and_masks(livecell):
    root, images = livecell
    dataset = LiveCellTestDataset(
        root / "images", Lambdad(keys="source", func=_double), root / "test.json", load_target=True, load_labels=True
    )
    assert len(dataset) == 3
    samples = {dataset[i]["file_name"]: dataset[i] for i in range(3)}
    first = samples["test_00.tif"]
    expected = images["test_00.tif"].astype(np.float32)
    assert first["source"].shape == (1, 1, *SHAPE)
    np.testing.assert_array_equal(first["source"][0, 0].numpy(), 2 * expected)
    np.testing.assert_array_equal(first["target"][0, 0].numpy(), expected)
    detections = first["detections"]
    torch.testing.assert_close(detections["boxes"], torch.tensor([[3.0, 2.0, 11.0, 7.0], [12.0, 10.0, 18.0, 16.0]]))
    assert detections["labels"].dtype == torch.uint8 and detections["labels"].tolist() == [0, 0]
    assert detections["masks"].dtype == torch.bool and detections["masks"].shape == (2, *SHAPE)
    np.testing.assert_array_equal(detections["masks"][0].numpy(), _rectangle_mask(2, 7, 3, 11).astype(bool))
    assert detections["masks"][1, 13, 15] and not detections["masks"][1, 5, 5]
    assert detections["masks"][1].sum() == pytest.approx(36, abs=14)
    empty = samples["test_01.tif"]["detections"]
    assert empty["boxes"].shape == (0, 4) and empty["masks"].shape == (0, *SHAPE)


def test_train_dataset_caches_decoded_images(livecell):
    root, images = livecell
    paths = sorted((root / "images").glob("train_*.tif"))
    cache = {}
    dataset = LiveCellDataset(paths, Lambdad(keys="source", func=_double), cache)
    samples = dataset[1]
    assert isinstance(samples, list) and samples[0]["source"].shape == (1, 1, *SHAPE)
    np.testing.assert_array_equal(samples[0]["source"][0, 0].numpy(), 2 * images["train_01.tif"].astype(np.float32))
    paths[1].unlink()
    np.testing.assert_array_equal(dataset[1][0]["source"].numpy(), samples[0]["source"].numpy())
    np.testing.assert_array_equal(cache[str(paths[1])][0, 0].numpy(), images["train_01.tif"])


def test_missing_extra_names_the_package_and_extra(livecell, monkeypatch):
    root, _ = livecell
    monkeypatch.setitem(sys.modules, "pycocotools", None)
    with pytest.raises(ImportError, match=r"pycocotools is required for LiveCellTestDataset.*viscy-data\[livecell\]"):
        LiveCellTestDataset(root / "images", Lambdad(keys="source", func=_double), root / "test.json")


def test_datamodule_fit_batches_and_caches(livecell):
    root, images = livecell
    dm = LiveCellDataModule(
        train_val_images=root / "images",
        train_annotations=root / "train.json",
        val_annotations=root / "val.json",
        batch_size=2,
        num_workers=0,
    )
    dm.setup("fit")
    assert [path.name for path in dm.train_dataset.images] == [f"train_{i:02d}.tif" for i in range(5)]
    batches = list(dm.train_dataloader())
    assert [batch["source"].shape for batch in batches] == [(2, 1, 1, *SHAPE)] * 2 + [(1, 1, 1, *SHAPE)]
    sums = sorted(float(s) for batch in batches for s in batch["source"].sum(dim=(1, 2, 3, 4)))
    expected = sorted(float(images[f"train_{i:02d}.tif"].astype(np.float64).sum()) for i in range(5))
    np.testing.assert_allclose(sums, expected, rtol=1e-6)
    assert len(dm.train_dataset._cache_map) == 5
    val_batch = next(iter(dm.val_dataloader()))
    np.testing.assert_array_equal(val_batch["source"][0, 0, 0].numpy(), images["val_00.tif"])


def test_datamodule_test_stage_returns_labels(livecell):
    root, _ = livecell
    dm = LiveCellDataModule(
        test_images=root / "images", test_annotations=root / "test.json", batch_size=1, num_workers=0
    )
    dm.setup("test")
    batches = list(dm.test_dataloader())
    assert [batch["file_name"] for batch in batches] == [["test_02.tif"], ["test_01.tif"], ["test_00.tif"]]
    assert batches[0]["source"].shape == (1, 1, 1, *SHAPE)
    assert [batch["detections"]["boxes"].shape for batch in batches] == [(1, 0, 4), (1, 0, 4), (1, 2, 4)]


def test_bad_paths_are_rejected(livecell):
    root, _ = livecell
    with pytest.raises(NotADirectoryError, match="train_val_images"):
        LiveCellDataModule(train_val_images=root / "train.json")
    with pytest.raises(FileNotFoundError, match="val_annotations"):
        LiveCellDataModule(val_annotations=root / "missing.json")
    (root / "images" / "val_01.tif").unlink()
    dm = LiveCellDataModule(root / "images", train_annotations=root / "train.json", val_annotations=root / "val.json")
    with pytest.raises(FileNotFoundError, match="val_01.tif"):
        dm.setup("fit")
    with pytest.raises(ValueError, match="test_images"):
        dm.setup("test")
