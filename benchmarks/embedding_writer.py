"""Peak memory and time of the streaming ``EmbeddingWriter`` at a million cells, and its equality with the
in-memory path.

Every measurement runs a real Lightning ``Trainer.predict`` loop (CPU, one process) in a fresh subprocess.
The model is fake: for a batch of dataset indices it returns seeded random float32 features
``(B, --features)``, projections ``(B, 32)`` and a tracking index. The dataset is ordered time-major (all
cells at t=0, then t=1, ...), so the writer's row order (fov_name, track_id, t) differs from the prediction
order and the reordering pass does real work.

- ``streamed``: ``--cells`` cells through ``EmbeddingWriter``; reports the wall-clock seconds of
  ``trainer.predict`` (which includes assembling the store) and the process's peak resident set size
  (``ru_maxrss``), also its RSS before predicting (imports, Lightning).
- ``compare``: ``--compare-cells`` cells through the writer, and the same predictions held in memory and
  written with ``write_embedding_dataset`` after sorting their rows with pandas by fov_name, track_id, t;
  reports whether ``obs``, ``X`` and ``obsm["X_projections"]`` are identical.

Run: ``python benchmarks/embedding_writer.py [--cells 1000000] [--compare-cells 10000] [--features 768]``.
The temporary stores (about 3x the feature bytes at the peak) go to ``--workdir`` (default: a temp dir).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

PROJECTIONS = 32
TIMEPOINTS = 20
FOVS = 8
BATCH_SIZE = 2048


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class FakeCells(torch.utils.data.Dataset):
    """Dataset index ``i``: time point ``i // n_tracks``, track ``i % n_tracks`` (tracks spread over FOVs)."""

    def __init__(self, n_cells: int) -> None:
        self.n_cells = n_cells
        self.n_tracks = -(-n_cells // TIMEPOINTS)

    def __len__(self) -> int:
        return self.n_cells

    def __getitems__(self, indices: list[int]) -> dict:
        indices = np.asarray(indices)
        track = indices % self.n_tracks
        return {
            "dataset_index": torch.from_numpy(indices),
            "index": {
                "fov_name": [f"/A/{f % 4 + 1}/{f // 4}" for f in track % FOVS],
                "track_id": torch.from_numpy(track // FOVS),
                "t": torch.from_numpy(indices // self.n_tracks),
                "id": torch.from_numpy(indices),
            },
        }


def _features(dataset_index: torch.Tensor, n_features: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(int(dataset_index[0]))
    features = torch.randn(len(dataset_index), n_features, generator=generator)
    return features, features[:, :PROJECTIONS] * 2


def _module(n_features: int):
    from lightning.pytorch import LightningModule

    class FakeEmbedder(LightningModule):
        def predict_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> dict:
            features, projections = _features(batch["dataset_index"], n_features)
            return {"features": features, "projections": projections, "index": batch["index"]}

    return FakeEmbedder()


def _loader(n_cells: int) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(FakeCells(n_cells), batch_size=BATCH_SIZE, collate_fn=lambda batch: batch)


def _predict(output: Path, n_cells: int, n_features: int) -> float:
    from lightning.pytorch import Trainer

    from viscy_utils.callbacks import EmbeddingWriter

    trainer = Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        callbacks=[EmbeddingWriter(output)],
        default_root_dir=output.parent,
    )
    start = time.perf_counter()
    trainer.predict(_module(n_features), _loader(n_cells), return_predictions=False)
    return time.perf_counter() - start


def _streamed(workdir: Path, n_cells: int, n_features: int) -> dict:
    import lightning.pytorch  # noqa: F401  (count the imports in the baseline)

    import viscy_utils.callbacks  # noqa: F401

    baseline = _peak_rss_mb()
    seconds = _predict(workdir / "streamed.zarr", n_cells, n_features)
    return {
        "cells": n_cells,
        "features": n_features,
        "seconds": seconds,
        "peak_rss_mb": _peak_rss_mb(),
        "rss_before_predict_mb": baseline,
    }


def _compare(workdir: Path, n_cells: int, n_features: int) -> dict:
    import anndata as ad
    import pandas as pd

    from viscy_utils.callbacks.embedding_writer import write_embedding_dataset

    _predict(workdir / "streamed.zarr", n_cells, n_features)
    streamed = ad.read_zarr(workdir / "streamed.zarr")
    batches = [
        _loader(n_cells).dataset.__getitems__(list(range(s, min(n_cells, s + BATCH_SIZE))))
        for s in range(0, n_cells, BATCH_SIZE)
    ]
    outputs = [_features(batch["dataset_index"], n_features) for batch in batches]
    index = pd.concat(
        [pd.DataFrame({k: np.asarray(v) for k, v in b["index"].items()}) for b in batches], ignore_index=True
    )
    index["fov_name"] = index["fov_name"].str.strip("/")
    order = index.sort_values(["fov_name", "track_id", "t"], kind="stable").index.to_numpy()
    features = torch.cat([f for f, _ in outputs]).numpy()[order]
    projections = torch.cat([p for _, p in outputs]).numpy()[order]
    write_embedding_dataset(workdir / "memory.zarr", features, index.iloc[order], projections=projections)
    in_memory = ad.read_zarr(workdir / "memory.zarr")
    try:
        pd.testing.assert_frame_equal(streamed.obs, in_memory.obs)
        obs_equal = True
    except AssertionError:
        obs_equal = False
    return {
        "cells": n_cells,
        "obs_equal": obs_equal,
        "X_equal": bool(np.array_equal(streamed.X, in_memory.X)),
        "projections_equal": bool(np.array_equal(streamed.obsm["X_projections"], in_memory.obsm["X_projections"])),
    }


def _run_worker(mode: str, n_cells: int, args: argparse.Namespace, workdir: Path) -> dict:
    workdir.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        __file__,
        "--worker",
        mode,
        "--cells",
        str(n_cells),
        "--features",
        str(args.features),
        "--workdir",
        str(workdir),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{mode} worker failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=1_000_000)
    parser.add_argument("--compare-cells", type=int, default=10_000)
    parser.add_argument("--features", type=int, default=768)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--worker", choices=["streamed", "compare"], default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        run = _streamed if args.worker == "streamed" else _compare
        print(json.dumps(run(args.workdir, args.cells, args.features)))
        return
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        compare = _run_worker("compare", args.compare_cells, args, Path(tmp) / "compare")
        streamed = _run_worker("streamed", args.cells, args, Path(tmp) / "streamed")
    print(
        f"equality at {compare['cells']} cells: obs {compare['obs_equal']}, X {compare['X_equal']}, "
        f"projections {compare['projections_equal']}"
    )
    print(
        f"streamed {streamed['cells']} cells x {streamed['features']}: {streamed['seconds']:.1f} s, "
        f"peak RSS {streamed['peak_rss_mb']:.0f} MB (before predict {streamed['rss_before_predict_mb']:.0f} MB)"
    )


if __name__ == "__main__":
    main()
