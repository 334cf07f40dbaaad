"""Helpers shared by the DynaCLR tests: a tiny encoder, tiny real plates with tracks, tiny modules."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

APP_DIR = Path(__file__).resolve().parents[1]
CONFIG_DIR = APP_DIR / "examples" / "configs"


class TinyEncoder(nn.Module):
    """A small deterministic encoder with the DynaCLR contract ``x -> (features, projections)``."""

    def __init__(self, in_channels: int = 2, feature_dim: int = 8, projection_dim: int = 4) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.conv = nn.Conv3d(in_channels, feature_dim, kernel_size=1)
        self.projection = nn.Linear(feature_dim, projection_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.conv(x).mean(dim=(2, 3, 4))
        return features, self.projection(features)


PLATE_POSITIONS = ("A/1/0", "A/1/1")
PLATE_SHAPE = (4, 1, 64, 64)  # (T, Z, Y, X)
TRACKS_PER_FOV = 3


def write_triplet_plate(
    root: Path, channel_names: tuple[str, ...] = ("Phase3D", "RFP"), positions: tuple[str, ...] = PLATE_POSITIONS
) -> dict[str, Path]:
    """Write a plate (default 2 FOVs) with 3 random-walk tracks per FOV that stay 17 px away from the border.

    With 32x32 patches every track row is kept by the triplet dataset (2 x 3 x 4 = 24 cells).
    """
    from viscy_data.testing import random_walk_tracks, write_hcs_plate, write_tracks

    data_path = root / "plate.zarr"
    tracks_path = root / "tracks"
    write_hcs_plate(data_path, positions=positions, channel_names=channel_names, shape=PLATE_SHAPE)
    for i, fov in enumerate(positions):
        tracks = random_walk_tracks(TRACKS_PER_FOV, PLATE_SHAPE[0], PLATE_SHAPE[2:], margin=17, seed=i)
        write_tracks(tracks_path, fov, tracks)
    return {"data_path": data_path, "tracks_path": tracks_path}


# A ContrastiveEncoder small enough for CPU tests: 2 channels, one z-slice, 32x32 patches.
TINY_CONTRASTIVE_ENCODER = {
    "backbone": "convnext_tiny",
    "in_channels": 2,
    "in_stack_depth": 1,
    "stem_kernel_size": [1, 4, 4],
    "stem_stride": [1, 4, 4],
    "embedding_dim": 768,
    "projection_dim": 32,
    "drop_path_rate": 0.0,
}
TINY_EXAMPLE_INPUT_SHAPE = [1, 2, 1, 32, 32]


def tiny_triplet_datamodule(paths: dict[str, Path], batch_size: int = 4):
    """TripletDataModule over :func:`write_triplet_plate` with 32x32 patches and per-FOV normalization."""
    from viscy_data.triplet import TripletDataModule
    from viscy_transforms import NormalizeSampled

    return TripletDataModule(
        data_path=str(paths["data_path"]),
        tracks_path=str(paths["tracks_path"]),
        source_channel=["Phase3D", "RFP"],
        z_range=(0, 1),
        initial_yx_patch_size=(32, 32),
        final_yx_patch_size=(32, 32),
        batch_size=batch_size,
        num_workers=0,
        time_interval=1,
        normalizations=[NormalizeSampled(keys=["Phase3D"], level="fov_statistics", subtrahend="mean", divisor="std")],
    )


def tiny_contrastive_module(**kwargs):
    """ContrastiveModule with the tiny ContrastiveEncoder."""
    from dynaclr.engine import ContrastiveModule
    from viscy_models.contrastive import ContrastiveEncoder

    encoder = ContrastiveEncoder(**TINY_CONTRASTIVE_ENCODER)
    return ContrastiveModule(encoder, example_input_array_shape=TINY_EXAMPLE_INPUT_SHAPE, **kwargs)


def train_tiny_checkpoint(paths: dict[str, Path], ckpt_path: Path, steps: int = 2) -> Path:
    """Train the tiny module for a few steps on the tiny plate (CPU) and save a Lightning checkpoint."""
    from lightning.pytorch import Trainer, seed_everything

    seed_everything(0)
    module = tiny_contrastive_module(lr=1e-3)
    trainer = Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=steps,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=ckpt_path.parent,
    )
    trainer.fit(module, datamodule=tiny_triplet_datamodule(paths))
    trainer.save_checkpoint(ckpt_path)
    return ckpt_path


SHAPE = (2, 3, 8, 8)


def random_triplets(n: int, negative: bool = False, seed: int = 0) -> list[dict]:
    generator = torch.Generator().manual_seed(seed)
    samples = []
    for i in range(n):
        sample = {"anchor": torch.rand(SHAPE, generator=generator), "positive": torch.rand(SHAPE, generator=generator)}
        if negative:
            sample["negative"] = torch.rand(SHAPE, generator=generator)
        sample["index"] = {"fov_name": f"A/1/{i % 2}", "id": i}
        samples.append(sample)
    return samples


def reference_ntxent(anchor: torch.Tensor, positive: torch.Tensor, temperature: float) -> torch.Tensor:
    """Standard NT-Xent over 2B views: each view's positive is its pair, the other 2B-2 are negatives."""
    z = F.normalize(torch.cat([anchor, positive]), dim=1)
    n = anchor.shape[0]
    logits = z @ z.T / temperature
    logits.fill_diagonal_(float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
    return F.cross_entropy(logits, targets)
