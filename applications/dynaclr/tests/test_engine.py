"""ContrastiveModule: losses, logged metrics, image logging, schedules, prediction and checkpoints."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from dynaclr_testing import SHAPE, TinyEncoder, random_triplets, reference_ntxent
from lightning.pytorch import Callback, Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from pytorch_metric_learning.losses import NTXentLoss
from torch import nn
from torch.utils.data import DataLoader

from dynaclr.engine import ContrastiveModule


def _loader(n: int, batch_size: int, negative: bool = False, seed: int = 0) -> DataLoader:
    return DataLoader(random_triplets(n, negative, seed), batch_size=batch_size, shuffle=False)


def _trainer(tmp_path, **kwargs) -> Trainer:
    defaults = dict(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        max_epochs=1,
        default_root_dir=tmp_path,
    )
    defaults.update(kwargs)
    return Trainer(**defaults)


def _module(encoder: nn.Module, **kwargs) -> ContrastiveModule:
    return ContrastiveModule(encoder, example_input_array_shape=(1, *SHAPE), **kwargs)


def test_ntxent_path_uses_anchor_and_positive_with_paired_labels(tiny_encoder):
    module = _module(tiny_encoder, loss_function=NTXentLoss(temperature=0.5))
    batch = next(iter(_loader(4, 4)))
    with torch.no_grad():
        loss = module._contrastive_step(batch, batch_idx=99, stage="train")
        _, anchor_proj = tiny_encoder(batch["anchor"])
        _, pos_proj = tiny_encoder(batch["positive"])
    torch.testing.assert_close(loss, reference_ntxent(anchor_proj, pos_proj, 0.5), rtol=1e-5, atol=1e-6)


def test_triplet_path_uses_the_negative(tiny_encoder):
    module = _module(tiny_encoder, loss_function=nn.TripletMarginLoss(margin=0.5))
    batch = next(iter(_loader(4, 4, negative=True)))
    with torch.no_grad():
        loss = module._contrastive_step(batch, batch_idx=99, stage="train")
        a, p, n = (tiny_encoder(batch[k])[1] for k in ("anchor", "positive", "negative"))
    expected = torch.clamp(0.5 + (a - p).norm(dim=1) - (a - n).norm(dim=1), min=0).mean()
    torch.testing.assert_close(loss, expected, rtol=1e-4, atol=1e-5)


def test_triplet_path_without_negative_names_the_missing_key(tiny_encoder):
    module = _module(tiny_encoder)
    batch = next(iter(_loader(2, 2)))
    with pytest.raises(KeyError, match="negative"):
        module._contrastive_step(batch, batch_idx=0, stage="train")


def test_in_batch_negative_metrics_match_a_loop_over_pairs():
    generator = torch.Generator().manual_seed(3)
    anchor, positive = torch.randn(5, 4, generator=generator), torch.randn(5, 4, generator=generator)
    cos_pos = F.cosine_similarity(anchor, positive).mean()
    dist_pos = F.pairwise_distance(anchor, positive).mean()
    metrics = ContrastiveModule._in_batch_negative_metrics(anchor, positive, cos_pos, dist_pos, "val")
    candidates = torch.cat([anchor, positive])
    cos_rows, dist_rows = [], []
    for i in range(5):
        others = [j for j in range(10) if j not in (i, i + 5)]
        cos_rows.append(torch.stack([F.cosine_similarity(anchor[i], candidates[j], dim=0) for j in others]))
        dist_rows.append(torch.stack([(anchor[i] - candidates[j]).norm() for j in others]))
    cos_neg, dist_neg = torch.stack(cos_rows), torch.stack(dist_rows)
    assert cos_neg.shape == (5, 8)
    torch.testing.assert_close(metrics["metrics/cosine_similarity/negative_mean/val"], cos_neg.mean())
    torch.testing.assert_close(metrics["metrics/cosine_similarity/negative_sum/val"], cos_neg.sum(1).mean())
    torch.testing.assert_close(metrics["metrics/margin_positive/negative/val"], cos_pos - cos_neg.mean())
    torch.testing.assert_close(metrics["metrics/euclidean_distance/negative_mean/val"], dist_neg.mean())
    torch.testing.assert_close(metrics["metrics/euclidean_distance/negative_sum/val"], dist_neg.sum(1).mean())
    torch.testing.assert_close(
        metrics["metrics/margin_euclidean_positive/negative/val"], dist_neg.mean() - dist_pos, rtol=1e-5, atol=1e-5
    )


def test_ntxent_fit_logs_loss_and_in_batch_negative_metrics(tiny_encoder, tmp_path):
    module = _module(tiny_encoder, loss_function=NTXentLoss(temperature=0.5))
    trainer = _trainer(tmp_path, limit_train_batches=2, limit_val_batches=1)
    trainer.fit(module, train_dataloaders=_loader(8, 4), val_dataloaders=_loader(4, 4, seed=1))
    logged = set(trainer.callback_metrics)
    for stage in ("train", "val"):
        assert {f"loss/{stage}_epoch", f"metrics/cosine_similarity/positive/{stage}"} <= logged
        assert f"metrics/euclidean_distance/positive/{stage}" in logged
        assert f"metrics/cosine_similarity/negative_mean/{stage}" in logged
        assert f"metrics/margin_euclidean_positive/negative/{stage}" in logged
        assert f"metrics/cosine_similarity_negative/{stage}" not in logged
    assert "loss/train_step" in logged


def test_triplet_fit_logs_negative_similarity(tiny_encoder, tmp_path):
    module = _module(tiny_encoder)
    trainer = _trainer(tmp_path, limit_train_batches=1, limit_val_batches=1)
    trainer.fit(module, _loader(4, 2, negative=True), _loader(2, 2, negative=True))
    assert "metrics/cosine_similarity_negative/train" in trainer.callback_metrics
    assert "metrics/euclidean_distance_negative/val" in trainer.callback_metrics
    assert "metrics/cosine_similarity/negative_mean/train" not in trainer.callback_metrics


def test_sample_images_are_logged_to_tensorboard(tiny_encoder, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    module = _module(tiny_encoder, loss_function=NTXentLoss(), log_batches_per_epoch=1, log_samples_per_batch=2)
    logger = TensorBoardLogger(tmp_path, name="tb", version="v")
    trainer = _trainer(tmp_path, logger=logger, limit_train_batches=2, limit_val_batches=1)
    trainer.fit(module, _loader(8, 4), _loader(4, 4))
    events = EventAccumulator(logger.log_dir, size_guidance={"images": 0}).Reload()
    assert {"train_samples", "val_samples"} <= set(events.Tags()["images"])
    image = events.Images("train_samples")[0]
    # 2 samples (rows) x 2 images (anchor, positive) x 2 channels, each 8x8 pixels
    assert (image.height, image.width) == (16, 32)
    assert module.training_step_outputs == [] and module.validation_step_outputs == []


class _LearningRateRecorder(Callback):
    def __init__(self) -> None:
        self.lrs: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])


def test_warmup_cosine_warms_up_then_decays_per_step(tiny_encoder, tmp_path):
    module = _module(tiny_encoder, loss_function=NTXentLoss(), lr=0.1, schedule="WarmupCosine", warmup_epochs=1)
    recorder = _LearningRateRecorder()
    trainer = _trainer(tmp_path, max_epochs=3, callbacks=[recorder], limit_val_batches=0)
    trainer.fit(module, _loader(8, 2))  # 4 steps per epoch, 12 steps in total
    warmup = [0.1 * (s + 1) / 4 for s in range(4)]
    decay = [0.1 * 0.5 * (1 + math.cos(math.pi * s / 8)) for s in range(8)]
    assert recorder.lrs == pytest.approx(warmup + decay, rel=1e-6)


def test_constant_schedule_keeps_the_learning_rate(tiny_encoder, tmp_path):
    module = _module(tiny_encoder, loss_function=NTXentLoss(), lr=0.01)
    recorder = _LearningRateRecorder()
    trainer = _trainer(tmp_path, max_epochs=2, callbacks=[recorder], limit_val_batches=0)
    trainer.fit(module, _loader(4, 2))
    assert recorder.lrs == [0.01] * 4
    assert isinstance(trainer.optimizers[0], torch.optim.AdamW)


def test_warmup_cosine_needs_a_finite_run(tiny_encoder, tmp_path):
    module = _module(tiny_encoder, loss_function=NTXentLoss(), schedule="WarmupCosine")
    trainer = _trainer(tmp_path, max_epochs=-1, max_steps=-1, limit_val_batches=0)
    with pytest.raises(ValueError, match="finite"):
        trainer.fit(module, _loader(4, 2))


def test_predict_step_returns_features_projections_and_index(tiny_encoder, tmp_path):
    module = _module(tiny_encoder)
    predictions = _trainer(tmp_path).predict(module, _loader(5, 2))
    assert [p["features"].shape for p in predictions] == [(2, 8), (2, 8), (1, 8)]
    assert predictions[0]["projections"].shape == (2, 4)
    assert torch.cat([p["index"]["id"] for p in predictions]).tolist() == [0, 1, 2, 3, 4]
    batch = next(iter(_loader(2, 2)))
    with torch.no_grad():
        features, projections = tiny_encoder(batch["anchor"])
    torch.testing.assert_close(predictions[0]["features"], features)
    torch.testing.assert_close(predictions[0]["projections"], projections)


def test_ckpt_path_loads_the_weights(tiny_encoder, tmp_path):
    source = _module(tiny_encoder)
    ckpt = tmp_path / "model.ckpt"
    torch.save({"state_dict": source.state_dict()}, ckpt)
    torch.manual_seed(123)
    loaded = _module(TinyEncoder(), ckpt_path=str(ckpt))
    for key, value in source.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, rtol=0, atol=0)


def test_ckpt_path_with_other_encoder_reports_first_mismatched_keys(tiny_encoder, tmp_path):
    ckpt = tmp_path / "model.ckpt"
    state = {f"model.{k}": v for k, v in tiny_encoder.state_dict().items()}
    state["model.extra.weight"] = state.pop("model.projection.weight")
    torch.save({"state_dict": state}, ckpt)
    with pytest.raises(ValueError, match=r"1 missing keys \(first: \['model.projection.weight'\]\)") as error:
        _module(TinyEncoder(), ckpt_path=str(ckpt))
    assert "model.extra.weight" in str(error.value) and str(ckpt) in str(error.value)


def test_missing_checkpoint_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.ckpt"):
        _module(TinyEncoder(), ckpt_path=str(tmp_path / "nope.ckpt"))


def test_trainer_checkpoint_with_other_encoder_fails_before_loading(tiny_encoder, tmp_path):
    trainer = _trainer(tmp_path, max_steps=1, limit_val_batches=0)
    trainer.fit(_module(tiny_encoder, loss_function=NTXentLoss()), _loader(2, 2))
    ckpt = tmp_path / "trained.ckpt"
    trainer.save_checkpoint(ckpt)
    wider = _module(TinyEncoder(projection_dim=4, feature_dim=8, in_channels=3))
    wider.model.extra = nn.Linear(2, 2)
    with pytest.raises(ValueError, match=r"2 missing keys \(first: \['model.extra.bias', 'model.extra.weight'\]\)"):
        _trainer(tmp_path).predict(wider, _loader(2, 2), ckpt_path=ckpt)


def test_ddp_with_gathered_negatives_matches_the_global_batch_ntxent(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).with_name("_ddp_ntxent_script.py")
    result = subprocess.run(
        [sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    values = dict(line.split() for line in result.stdout.splitlines() if line.startswith(("logged", "reference")))
    assert float(values["logged"]) == pytest.approx(float(values["reference"]), abs=1e-5)


def test_predict_step_collates_a_list_of_per_sample_index_dicts(tiny_encoder):
    module = _module(tiny_encoder)
    index = [{"fov_name": "A/1/0", "id": 7}, {"fov_name": "A/1/1", "id": 9}]
    prediction = module.predict_step({"anchor": torch.rand(2, *SHAPE), "index": index}, batch_idx=0)
    assert prediction["index"] == {"fov_name": ["A/1/0", "A/1/1"], "id": [7, 9]}
