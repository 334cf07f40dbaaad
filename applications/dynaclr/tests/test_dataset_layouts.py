"""``MultiExperimentTripletDataset`` reads OME-Zarr 0.4 (Zarr v2), 0.5 (Zarr v3) and rechunked plates alike."""

import numpy as np
import pandas as pd
import pytest

from viscy_data.contrastive.cell_index import MultiExperimentIndex
from viscy_data.contrastive.dataset import MultiExperimentTripletDataset
from viscy_data.contrastive.experiment import ExperimentConfig, ExperimentRegistry
from viscy_data.rechunk import rechunk_plate
from viscy_data.testing import write_hcs_plate, write_tracks

FOV = "A/1/0"
T, H, W = 4, 32, 40


def _image() -> np.ndarray:
    """``value = 10000 t + 1000 c + 100 y + x``: a patch tells where it was read from."""
    t, c, z, y, x = np.meshgrid(np.arange(T), np.arange(2), np.arange(1), np.arange(H), np.arange(W), indexing="ij")
    return (10000 * t + 1000 * c + 100 * y + x).astype(np.int32)


def _plate(root, version: str, rechunked: bool):
    data_path, tracks_path = root / f"plate_{version}.zarr", root / "tracks"
    write_hcs_plate(
        data_path, positions=[FOV], shape=(T, 1, H, W), dtype=np.int32, data={FOV: _image()}, version=version
    )
    if rechunked:
        data_path = rechunk_plate(data_path, root / f"patches_{version}.zarr", chunks=(1, 1, 1, 8, 8))
    table = pd.DataFrame(
        {"track_id": np.repeat([0, 1], T), "t": np.tile(range(T), 2), "y": 12, "x": [9] * T + [25] * T}
    )
    write_tracks(tracks_path, FOV, table)
    return data_path, tracks_path


@pytest.mark.parametrize(("version", "rechunked"), [("0.4", False), ("0.5", False), ("0.4", True), ("0.5", True)])
def test_patches_are_the_same_whatever_the_zarr_version_and_chunks(tmp_path, version, rechunked):
    data_path, tracks_path = _plate(tmp_path, version, rechunked)
    config = ExperimentConfig(
        "exp", str(data_path), str(tracks_path), ["Phase3D", "GFP"], ["GFP", "Phase3D"], {"c": ["A/1"]}
    )
    index = MultiExperimentIndex(ExperimentRegistry([config]), slice(0, 1), (8, 8), tau_range_hours=(0.5, 1.0))
    dataset = MultiExperimentTripletDataset(index, tau_range_hours=(0.5, 1.0), seed=3)
    batch = dataset.__getitems__(list(range(len(dataset))))
    image = _image()
    for i, (_, anchor) in enumerate(index.valid_anchors.iterrows()):
        y0, x0 = int(anchor["y_clamp"]) - 4, int(anchor["x_clamp"]) - 4
        np.testing.assert_array_equal(
            batch["anchor"][i].numpy(), image[int(anchor["t"]), [1, 0], :, y0 : y0 + 8, x0 : x0 + 8]
        )
    positive_t = batch["positive"][:, 0, 0, 0, 0].numpy() // 10000
    assert np.all(np.isin(positive_t - index.valid_anchors["t"].to_numpy(), [1, 2]))  # 30 min frames: tau 1-2
