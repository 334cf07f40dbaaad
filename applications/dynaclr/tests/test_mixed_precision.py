"""Mixed precision: fit and predict under autocast, embeddings always written as float32."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
from dynaclr_testing import TinyEncoder, tiny_contrastive_module, tiny_triplet_datamodule, write_triplet_plate
from lightning.pytorch import Callback, Trainer, seed_everything

from viscy_utils.callbacks import EmbeddingWriter

N_CELLS = 24  # write_triplet_plate: 2 FOVs x 3 tracks x 4 time points


class _Recorder(Callback):
    """The training losses and the dtype of the predicted features."""

    def __init__(self) -> None:
        self.losses: list[float] = []
        self.prediction_dtypes: set[torch.dtype] = set()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"]))

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self.prediction_dtypes.add(outputs["features"].dtype)


def _trainer(accelerator: str, precision: str, recorder: Callback, **kwargs) -> Trainer:
    return Trainer(
        accelerator=accelerator,
        devices=1,
        precision=precision,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[recorder, *kwargs.pop("callbacks", [])],
        **kwargs,
    )


def _fit_and_predict(root: Path, accelerator: str, precision: str, module) -> tuple[_Recorder, object]:
    import anndata

    paths = write_triplet_plate(root)
    recorder = _Recorder()
    fit = _trainer(accelerator, precision, recorder, max_steps=2, limit_val_batches=0, default_root_dir=root)
    fit.fit(module, datamodule=tiny_triplet_datamodule(paths))
    output = root / "embeddings.zarr"
    predict = _trainer(accelerator, precision, recorder, callbacks=[EmbeddingWriter(output)], default_root_dir=root)
    predict.predict(module, datamodule=tiny_triplet_datamodule(paths), return_predictions=False)
    return recorder, anndata.read_zarr(output)


def test_bf16_mixed_fits_and_predicts_on_cpu_with_float32_embeddings(tmp_path):
    from dynaclr.engine import ContrastiveModule
    from dynaclr.loss import NTXentHCL

    seed_everything(0)
    module = ContrastiveModule(TinyEncoder(), NTXentHCL(), lr=1e-3, example_input_array_shape=(1, 2, 1, 32, 32))
    recorder, adata = _fit_and_predict(tmp_path, "cpu", "bf16-mixed", module)
    assert len(recorder.losses) == 2 and np.isfinite(recorder.losses).all()
    assert recorder.prediction_dtypes == {torch.bfloat16}  # autocast was on: the writer did the cast
    assert adata.X.dtype == np.float32 and adata.obsm["X_projections"].dtype == np.float32
    assert adata.X.shape == (N_CELLS, 8) and np.isfinite(adata.X).all()
    assert np.unique(adata.X, axis=0).shape[0] > N_CELLS // 2  # cells differ (bf16 may merge a few)


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["16-mixed", "bf16-mixed"])
def test_mixed_precision_fits_and_predicts_on_cuda_with_float32_embeddings(precision, tmp_path):
    seed_everything(0)
    recorder, adata = _fit_and_predict(tmp_path, "gpu", precision, tiny_contrastive_module(lr=1e-3))
    assert len(recorder.losses) == 2 and np.isfinite(recorder.losses).all()
    assert recorder.prediction_dtypes <= {torch.float16, torch.bfloat16}
    assert adata.X.dtype == np.float32 and adata.X.shape == (N_CELLS, 768) and np.isfinite(adata.X).all()


@pytest.mark.gpu
def test_bf16_mixed_training_is_not_slower_than_float32_on_cuda():
    """Steps per second of the ConvNeXt-tiny contrastive encoder on 2 x 32 x 128 x 128 patches, batch 32."""
    from viscy_models.contrastive import ContrastiveEncoder

    encoder = ContrastiveEncoder(
        backbone="convnext_tiny", in_channels=2, in_stack_depth=16, stem_kernel_size=(4, 4, 4), stem_stride=(4, 4, 4)
    ).cuda()
    optimizer = torch.optim.AdamW(encoder.parameters())
    images = torch.randn(32, 2, 16, 128, 128, device="cuda")

    def steps_per_second(dtype: torch.dtype | None, steps: int = 10) -> float:
        for i in range(steps + 3):  # 3 warm-up steps
            if i == 3:
                torch.cuda.synchronize()
                start = time.perf_counter()
            with torch.autocast("cuda", dtype=dtype or torch.float32, enabled=dtype is not None):
                loss = encoder(images)[1].square().mean()
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        torch.cuda.synchronize()
        return steps / (time.perf_counter() - start)

    float32, bf16 = steps_per_second(None), steps_per_second(torch.bfloat16)
    print(f"steps/s: 32-true {float32:.2f}, bf16-mixed {bf16:.2f}")
    assert bf16 >= 0.9 * float32
