import numpy as np
import pytest
import torch
from monai.transforms import CenterSpatialCropd

from viscy_data.cell_division_triplet import CellDivisionTripletDataModule, CellDivisionTripletDataset

N_FRAMES = (4, 5, 6, 4, 5)
SIZE = 12


def _track(track: int, n_frames: int) -> np.ndarray:
    """Track whose pixel (0, 0) encodes ``1000 * track + 10 * t + c``, so a patch tells where it came from."""
    rng = np.random.default_rng(track)
    data = rng.normal(size=(n_frames, 2, SIZE, SIZE)).astype(np.float32)
    t, c = np.meshgrid(np.arange(n_frames), np.arange(2), indexing="ij")
    data[:, :, 0, 0] = 1000 * track + 10 * t + c
    return data


@pytest.fixture
def track_dir(tmp_path):
    for track, n_frames in enumerate(N_FRAMES):
        np.save(tmp_path / f"track{track}.npy", _track(track, n_frames))
    return tmp_path


def _origin(patch: torch.Tensor) -> tuple[int, int]:
    """(track, t) encoded in the first channel of a patch."""
    code = int(patch.reshape(patch.shape[0], -1)[0, 0].item())
    return code // 1000, (code % 1000) // 10


def _files(track_dir):
    return [track_dir / f"track{i}.npy" for i in range(len(N_FRAMES))]


def test_any_interval_pairs_each_anchor_with_itself_and_another_track(track_dir):
    torch.manual_seed(0)
    dataset = CellDivisionTripletDataset(_files(track_dir), ["h2b", "bf"])
    assert len(dataset) == sum(N_FRAMES)
    negative_tracks = set()
    for index in range(len(dataset)):
        sample = dataset[index]
        track, t = _origin(sample["anchor"])
        assert sample["anchor"].shape == (2, 1, SIZE, SIZE)
        np.testing.assert_array_equal(sample["anchor"][:, 0].numpy(), np.load(_files(track_dir)[track])[t, [1, 0]])
        torch.testing.assert_close(sample["positive"], sample["anchor"])
        negative_track, negative_t = _origin(sample["negative"])
        assert negative_track != track and negative_t < N_FRAMES[negative_track]
        negative_tracks.add(negative_track)
    assert negative_tracks == set(range(len(N_FRAMES)))


def test_integer_interval_uses_later_frames(track_dir):
    dataset = CellDivisionTripletDataset(_files(track_dir), ["1"], time_interval=2)
    assert len(dataset) == sum(n - 2 for n in N_FRAMES)
    for index in range(len(dataset)):
        sample = dataset[index]
        track, t = _origin(sample["anchor"])
        assert _origin(sample["positive"]) == (track, t + 2)
        negative_track, negative_t = _origin(sample["negative"])
        assert negative_track != track
        if t + 2 < N_FRAMES[negative_track]:
            assert negative_t == t + 2


def test_negatives_follow_the_torch_seed(track_dir):
    dataset = CellDivisionTripletDataset(_files(track_dir), ["bf"])
    draws = []
    for _ in range(2):
        torch.manual_seed(123)
        draws.append([_origin(dataset[i]["negative"]) for i in range(len(dataset))])
    assert draws[0] == draws[1]


def test_single_track_negative_is_another_time(track_dir):
    dataset = CellDivisionTripletDataset(_files(track_dir)[:1], ["bf"])
    for index in range(len(dataset)):
        sample = dataset[index]
        assert _origin(sample["negative"])[0] == 0
        assert _origin(sample["negative"])[1] != _origin(sample["anchor"])[1]


def test_multichannel_2d_output_with_a_crop(track_dir):
    crop = CenterSpatialCropd(keys=["bf", "h2b"], roi_size=(1, 8, 8))
    dataset = CellDivisionTripletDataset(
        _files(track_dir), ["bf", "h2b"], anchor_transform=crop, positive_transform=crop, output_2d=True
    )
    sample = dataset[3]
    assert sample["anchor"].shape == (2, 8, 8) and sample["positive"].shape == (2, 8, 8)
    assert sample["negative"].shape == (2, SIZE, SIZE)
    np.testing.assert_array_equal(sample["anchor"].numpy(), np.load(_files(track_dir)[0])[3, :, 2:10, 2:10])


def test_predict_mode_returns_track_index(track_dir):
    dataset = CellDivisionTripletDataset(_files(track_dir), ["bf"], fit=False, time_interval=3)
    assert len(dataset) == sum(N_FRAMES)
    sample = dataset[5]
    assert set(sample) == {"anchor", "index"}
    assert sample["index"] == {"fov_name": "track1", "id": 1}


def test_bad_channels_and_intervals_are_rejected(track_dir):
    with pytest.raises(ValueError, match="Channel 'gfp' not found in CHANNEL_MAPPING"):
        CellDivisionTripletDataset(_files(track_dir), ["gfp"])
    with pytest.raises(ValueError, match="track0.npy.*2 channels"):
        CellDivisionTripletDataset(_files(track_dir), ["3"])
    with pytest.raises(ValueError, match="No anchor"):
        CellDivisionTripletDataset(_files(track_dir), ["bf"], time_interval=6)


def test_datamodule_splits_tracks_and_batches_crops(track_dir):
    torch.manual_seed(0)
    dm = CellDivisionTripletDataModule(
        str(track_dir), "h2b", final_yx_patch_size=(8, 8), batch_size=4, num_workers=0, time_interval=1
    )
    dm.setup("fit")
    train_ids, val_ids = set(dm.train_dataset.track_ids), set(dm.val_dataset.track_ids)
    assert len(train_ids) == 4 and len(val_ids) == 1 and not train_ids & val_ids
    batches = list(dm.train_dataloader())
    assert len(batches) == len(dm.train_dataset) // 4
    for key in ("anchor", "positive", "negative"):
        assert batches[0][key].shape == (4, 1, 1, 8, 8)
    batch = next(iter(dm.val_dataloader()))
    assert batch["anchor"].shape[1:] == (1, 1, 8, 8)


def test_datamodule_predict_and_test(track_dir):
    dm = CellDivisionTripletDataModule(str(track_dir), ["bf", "h2b"], batch_size=3, num_workers=0)
    dm.setup("predict")
    batch = next(iter(dm.predict_dataloader()))
    assert batch["anchor"].shape == (3, 2, 1, SIZE, SIZE)
    assert batch["index"]["fov_name"] == ["track0"] * 3 and batch["index"]["id"].tolist() == [0, 1, 2]
    with pytest.raises(NotImplementedError, match="does not support testing"):
        dm.setup("test")


def test_datamodule_needs_track_files(tmp_path):
    with pytest.raises(ValueError, match="No .npy files found"):
        CellDivisionTripletDataModule(str(tmp_path), "bf")
