"""ClassificationModule and ClassificationPredictionWriter on a tiny ContrastiveEncoder backbone."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from lightning.pytorch import Trainer
from torch import nn
from torch.utils.data import DataLoader

from dynaclr.classification import ClassificationModule, ClassificationPredictionWriter
from viscy_models.contrastive import ContrastiveEncoder

SHAPE = (1, 1, 32, 32)


def _module() -> ClassificationModule:
    torch.manual_seed(0)
    encoder = ContrastiveEncoder(
        "convnext_tiny", in_channels=1, in_stack_depth=1, stem_kernel_size=(1, 4, 4), stem_stride=(1, 4, 4)
    )
    return ClassificationModule(encoder, lr=1e-3, example_input_array_shape=(2, *SHAPE))


def _samples(n: int, with_index: bool = False) -> list:
    generator = torch.Generator().manual_seed(0)
    samples = []
    for i in range(n):
        x = torch.rand(SHAPE, generator=generator)
        y = torch.tensor([float(i % 2)])
        samples.append((x, y, {"fov_name": "A/1/0", "id": i}) if with_index else (x, y))
    return samples


def _trainer(tmp_path, **kwargs) -> Trainer:
    return Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, default_root_dir=tmp_path, max_epochs=1, **kwargs
    )


def test_backbone_head_is_a_single_logit():
    module = _module()
    assert isinstance(module.backbone.head.fc, nn.Linear)
    assert (module.backbone.head.fc.in_features, module.backbone.head.fc.out_features) == (768, 1)
    assert module(torch.rand(3, *SHAPE)).shape == (3, 1)


def test_fit_logs_loss_accuracy_and_f1(tmp_path):
    trainer = _trainer(tmp_path, limit_train_batches=1, limit_val_batches=1)
    trainer.fit(_module(), DataLoader(_samples(4), batch_size=4), DataLoader(_samples(4), batch_size=4))
    for key in ("loss/train_epoch", "loss/val", "metric/accuracy/val", "metric/f1_score/train"):
        assert key in trainer.callback_metrics
    accuracy = trainer.callback_metrics["metric/accuracy/val"]
    assert 0.0 <= float(accuracy) <= 1.0


def test_prediction_writer_saves_labels_and_probabilities(tmp_path):
    module = _module()
    output = tmp_path / "predictions.csv"
    trainer = _trainer(tmp_path, callbacks=[ClassificationPredictionWriter(output)])
    trainer.predict(module, DataLoader(_samples(5, with_index=True), batch_size=2), return_predictions=False)
    table = pd.read_csv(output)
    assert table["id"].tolist() == [0, 1, 2, 3, 4]
    assert table["label"].tolist() == [0.0, 1.0, 0.0, 1.0, 0.0]
    x = torch.stack([sample[0] for sample in _samples(5)])
    with torch.no_grad():
        expected = torch.sigmoid(module.eval()(x)).squeeze(1).numpy()
    assert table["prediction"].to_numpy() == pytest.approx(expected, rel=1e-5)


def test_prediction_writer_refuses_an_existing_file(tmp_path):
    existing = tmp_path / "predictions.csv"
    existing.write_text("keep")
    with pytest.raises(FileExistsError, match="predictions.csv"):
        ClassificationPredictionWriter(existing)
    assert existing.read_text() == "keep"
