"""JointContrastiveModule: two-channel CLIP-style loss, prediction arms and errors."""

from __future__ import annotations

import pytest
import torch
from dynaclr_testing import TinyEncoder, random_triplets, reference_ntxent
from lightning.pytorch import Trainer
from pytorch_metric_learning.losses import NTXentLoss
from torch import nn
from torch.utils.data import DataLoader

from dynaclr.multi_modal import JointContrastiveModule, JointEncoders


def _joint_module(**kwargs) -> JointContrastiveModule:
    torch.manual_seed(0)
    encoders = JointEncoders(TinyEncoder(in_channels=1), TinyEncoder(in_channels=1))
    return JointContrastiveModule(encoders, example_input_array_shape=(1, 1, 3, 8, 8), **kwargs)


def test_loss_is_the_sum_of_both_cross_modal_ntxent_terms():
    module = _joint_module(loss_function=NTXentLoss(temperature=0.3))
    batch = next(iter(DataLoader(random_triplets(4), batch_size=4)))
    with torch.no_grad():
        loss = module._contrastive_step(batch, batch_idx=99, stage="train")
        source, target = module.model.source_encoder, module.model.target_encoder
        a_src, a_tgt = source(batch["anchor"][:, :1])[1], target(batch["anchor"][:, 1:])[1]
        p_src, p_tgt = source(batch["positive"][:, :1])[1], target(batch["positive"][:, 1:])[1]
    expected = reference_ntxent(a_src, a_tgt, 0.3) + reference_ntxent(p_tgt, p_src, 0.3)
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("arm", "channel"), [("source", 0), ("target", 1)])
def test_prediction_uses_the_chosen_arm_and_its_channel(arm, channel, tmp_path):
    module = _joint_module(prediction_arm=arm)
    trainer = Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, default_root_dir=tmp_path)
    predictions = trainer.predict(module, DataLoader(random_triplets(3), batch_size=3))
    anchor = next(iter(DataLoader(random_triplets(3), batch_size=3)))["anchor"]
    encoder = getattr(module.model, f"{arm}_encoder")
    with torch.no_grad():
        features, projections = encoder(anchor[:, channel : channel + 1])
    torch.testing.assert_close(predictions[0]["features"], features)
    torch.testing.assert_close(predictions[0]["projections"], projections)


def test_fit_logs_the_joint_loss(tmp_path):
    module = _joint_module(loss_function=NTXentLoss())
    trainer = Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, max_epochs=1, default_root_dir=tmp_path
    )
    trainer.fit(
        module, DataLoader(random_triplets(4), batch_size=2), DataLoader(random_triplets(2, seed=1), batch_size=2)
    )
    assert {"loss/train_epoch", "loss/val_epoch", "metrics/cosine_similarity/positive/val"} <= set(
        trainer.callback_metrics
    )


def test_invalid_prediction_arm_is_rejected():
    with pytest.raises(ValueError, match="Invalid prediction arm"):
        _joint_module(prediction_arm="both")


def test_a_triplet_loss_is_rejected_with_a_clear_error():
    module = _joint_module(loss_function=nn.TripletMarginLoss())
    batch = next(iter(DataLoader(random_triplets(2), batch_size=2)))
    with pytest.raises(TypeError, match="NT-Xent"):
        module._contrastive_step(batch, batch_idx=0, stage="train")
