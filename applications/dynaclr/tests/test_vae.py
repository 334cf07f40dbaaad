"""BetaVaeModule and BetaVaeLogger: loss terms, beta schedules, logging and latent visualisations."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
import torch
from lightning.pytorch import Callback, Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader

from dynaclr.engine import BetaVaeModule
from dynaclr.vae_logging import BetaVaeLogger

SHAPE = (1, 3, 8, 8)  # (C, Z, Y, X)
LATENT = 4


class TinyVae(nn.Module):
    """Fully connected VAE over (1, 3, 8, 8) images with a ``decoder`` mapping (N, latent) to images."""

    latent_dim = LATENT

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Linear(192, 2 * LATENT)
        self.decoder = nn.Sequential(nn.Linear(LATENT, 192), nn.Unflatten(1, SHAPE))

    def forward(self, x: torch.Tensor) -> SimpleNamespace:
        mean, logvar = self.encoder(x.flatten(1)).chunk(2, dim=1)
        z = mean + torch.randn_like(mean) * (0.5 * logvar).exp()
        return SimpleNamespace(recon_x=self.decoder(z), mean=mean, logvar=logvar, z=z)


def _loader(n: int = 8, batch_size: int = 4) -> DataLoader:
    generator = torch.Generator().manual_seed(0)
    samples = [{"anchor": torch.rand(SHAPE, generator=generator), "index": {"id": i}} for i in range(n)]
    return DataLoader(samples, batch_size=batch_size)


def _trainer(tmp_path, **kwargs) -> Trainer:
    options = dict(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        max_epochs=1,
    )
    options.update(kwargs)
    return Trainer(**options)


def _module(**kwargs) -> BetaVaeModule:
    torch.manual_seed(0)
    return BetaVaeModule(TinyVae(), example_input_array_shape=(1, *SHAPE), **kwargs)


def test_forward_loss_is_per_image_squared_error_plus_beta_kl():
    module = _module(beta=2.0)
    x = next(iter(_loader()))["anchor"]
    torch.manual_seed(1)
    out = module(x)
    expected_recon = ((out["recon_x"] - x) ** 2).flatten(1).sum(1).mean()
    posterior = torch.distributions.Normal(out["mu"], (0.5 * out["logvar"]).exp())
    prior = torch.distributions.Normal(torch.zeros_like(out["mu"]), torch.ones_like(out["mu"]))
    expected_kl = torch.distributions.kl_divergence(posterior, prior).sum(1).mean()
    torch.testing.assert_close(out["recon_loss"], expected_recon)
    torch.testing.assert_close(out["kl_loss"], expected_kl, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out["total_loss"], expected_recon + 2.0 * expected_kl, rtol=1e-5, atol=1e-5)


def test_mean_reduction_is_rescaled_to_the_same_per_image_sum():
    x = next(iter(_loader()))["anchor"]
    recon = torch.zeros_like(x)
    summed = _module(loss_function=nn.MSELoss(reduction="sum"))._reconstruction_loss(recon, x)
    averaged = _module(loss_function=nn.MSELoss(reduction="mean"))._reconstruction_loss(recon, x)
    torch.testing.assert_close(summed, averaged)
    torch.testing.assert_close(summed, (x**2).flatten(1).sum(1).mean())


class _BetaRecorder(Callback):
    def __init__(self) -> None:
        self.betas: list[float] = []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.betas.append(pl_module._get_current_beta())


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        ("linear", [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]),
        ("cosine", [0.0, 0.1464466, 0.5, 0.8535534, 1.0, 1.0]),
        ("warmup", [0.0, 0.0, 0.0, 0.0, 1.0, 1.0]),
        (None, [1.0] * 6),
    ],
)
def test_beta_schedules_ramp_from_beta_min_to_beta(schedule, expected, tmp_path):
    module = _module(beta=1.0, beta_min=0.0, beta_schedule=schedule, beta_warmup_epochs=4)
    recorder = _BetaRecorder()
    _trainer(tmp_path, max_epochs=6, callbacks=[recorder], limit_val_batches=0).fit(module, _loader(4, 4))
    assert recorder.betas == pytest.approx([max(b, 1e-15) for b in expected], abs=1e-6)


def test_unknown_beta_schedule_is_rejected():
    with pytest.raises(ValueError, match="beta_schedule"):
        _module(beta_schedule="exponential")


def test_fit_logs_losses_diagnostics_latent_statistics_and_reconstructions(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    module = _module(log_samples_per_batch=2)
    logger = TensorBoardLogger(tmp_path, name="tb", version="v")
    trainer = _trainer(tmp_path, logger=logger, limit_val_batches=1)
    trainer.fit(module, _loader(), _loader(4, 4))
    logged = trainer.callback_metrics
    for key in ("loss/train/total", "loss/val/kl", "beta/train", "diagnostics/encoder_grad_norm"):
        assert key in logged
    assert "latent_statistics/active_dims/val" in logged and "diagnostics/recon_has_nan" in logged
    assert logged["latent_statistics/utilization/train"] == logged["latent_statistics/active_dims/train"] / LATENT
    events = EventAccumulator(logger.log_dir, size_guidance={"images": 0, "histograms": 0}).Reload()
    assert {"train_reconstructions", "val_reconstructions"} <= set(events.Tags()["images"])
    assert "latent_distributions/dim_0_val" in events.Tags()["histograms"]


def test_latent_statistics_count_dimensions_with_variance_above_threshold():
    mu = torch.stack([torch.tensor([1.0, -1.0, 1.0, -1.0]), torch.full((4,), 0.01), torch.zeros(4)], dim=1)
    stats = BetaVaeLogger(latent_dim=3)._latent_statistics(mu, "val")
    assert stats["latent_statistics/active_dims/val"] == 1
    torch.testing.assert_close(stats["latent_statistics/utilization/val"], torch.tensor(1 / 3))
    torch.testing.assert_close(stats["latent_statistics/std_max/val"], torch.tensor(1.0))
    torch.testing.assert_close(stats["latent_statistics/effective_dim/val"], torch.tensor(1.0))


def test_latent_visualisations_are_written_as_images(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    module = _module()
    logger = TensorBoardLogger(tmp_path, name="tb", version="v")
    _trainer(tmp_path, logger=logger, limit_val_batches=0).fit(module, _loader(4, 4))
    vae_logger = BetaVaeLogger(latent_dim=LATENT)
    vae_logger.log_latent_traversal(module, n_dims=2, n_steps=5)
    vae_logger.log_latent_interpolation(module, n_pairs=1, n_steps=5)
    vae_logger.log_factor_traversal_matrix(module, n_dims=3, n_steps=4)
    logger.experiment.flush()
    events = EventAccumulator(logger.log_dir, size_guidance={"images": 0}).Reload()
    tags = set(events.Tags()["images"])
    assert {"latent_traversal/dim_0", "latent_traversal/dim_1", "latent_interpolation/pair_0"} <= tags
    matrix = events.Images("factor_traversal_matrix")[0]
    assert (matrix.height, matrix.width) == (3 * 9 + 1, 4 * 9 + 1)  # 8 px tiles with 1 px padding


def test_latent_visualisations_skip_a_model_without_decoder(caplog):
    module = BetaVaeModule(nn.Identity())
    with caplog.at_level(logging.WARNING, logger="dynaclr.vae_logging"):
        BetaVaeLogger(latent_dim=2).log_latent_traversal(module)
    assert "decoder" in caplog.text


def test_predict_step_returns_latent_reconstruction_and_index(tmp_path):
    predictions = _trainer(tmp_path).predict(_module(), _loader(6, 4))
    assert predictions[0]["latent"].shape == (4, LATENT)
    assert predictions[1]["reconstruction"].shape == (2, *SHAPE)
    assert predictions[1]["index"]["id"].tolist() == [4, 5]


def test_default_beta_schedule_of_the_logger(tmp_path):
    class _Recorder(Callback):
        values: list[float] = []

        def on_train_epoch_start(self, trainer, pl_module) -> None:
            self.values.append(BetaVaeLogger().log_beta_schedule(pl_module))

    recorder = _Recorder()
    _trainer(tmp_path, max_epochs=10, callbacks=[recorder], limit_val_batches=0).fit(_module(), _loader(4, 4))
    # 0.1 during the first epoch (10%), linear ramp to 4.0 at epoch 5 (50%), then 4.0
    expected = [0.1, 0.1, 1.075, 2.05, 3.025, 4.0, 4.0, 4.0, 4.0, 4.0]
    assert recorder.values == pytest.approx(expected)
