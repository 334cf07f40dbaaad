"""OnlineEvalCallback in real Trainer runs: single process, DDP on 2 gloo ranks, TensorBoard tags."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _online_eval_fixtures import EmbeddingEcho, LabelledTracks, LabelledTracksData
from lightning.pytorch import Trainer
from lightning.pytorch.loggers import TensorBoardLogger

from viscy_utils.callbacks import OnlineEvalCallback
from viscy_utils.callbacks.online_eval import OnlineEvalCallback as OnlineEvalCallbackFromModule

SCRIPT = Path(__file__).with_name("_ddp_online_eval.py")
EVAL_TAGS = {
    "eval/effective_rank",
    "eval/effective_rank_projections",
    "eval/temporal_smoothness",
    "eval/adjacent_to_random_ratio",
    "eval/knn_accuracy",
    "eval/linear_probe_accuracy",
}


def _fit(callback, n_samples=48, max_epochs=1, logger=False):
    trainer = Trainer(
        accelerator="cpu",
        max_epochs=max_epochs,
        logger=logger,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=[callback],
    )
    trainer.fit(EmbeddingEcho(), datamodule=LabelledTracksData(n_samples))
    return trainer


def test_callback_is_exported_from_the_callbacks_package():
    assert OnlineEvalCallback is OnlineEvalCallbackFromModule
    callback = OnlineEvalCallback()
    assert (callback.every_n_epochs, callback.max_cells, callback.label_key) == (1, 20000, None)
    assert (callback.k, callback.temperature) == (20, 0.07)


def test_validation_embeddings_are_evaluated_and_logged_to_tensorboard(tmp_path):
    callback = OnlineEvalCallback(label_key="infection_state", k=5)
    trainer = _fit(callback, logger=TensorBoardLogger(tmp_path, name="run", version=0))
    expected = LabelledTracks(48)
    np.testing.assert_array_equal(callback.last_embeddings.features, expected.features.numpy())
    assert EVAL_TAGS <= set(trainer.callback_metrics)
    assert float(trainer.callback_metrics["eval/knn_accuracy"]) == 1.0  # labels set a separable direction
    assert float(trainer.callback_metrics["eval/linear_probe_accuracy"]) == 1.0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "run" / "version_0"))
    events.Reload()
    assert EVAL_TAGS <= set(events.Tags()["scalars"])


def test_without_label_key_only_label_free_metrics_are_logged():
    trainer = _fit(OnlineEvalCallback())
    logged = {name for name in trainer.callback_metrics if name.startswith("eval/")}
    assert logged == EVAL_TAGS - {"eval/knn_accuracy", "eval/linear_probe_accuracy"}


def test_every_n_epochs_skips_the_other_epochs():
    trainer = _fit(OnlineEvalCallback(every_n_epochs=2))
    assert not any(name.startswith("eval/") for name in trainer.callback_metrics)


def test_max_cells_caps_the_evaluated_cells():
    callback = OnlineEvalCallback(max_cells=10)
    _fit(callback)
    assert len(callback.last_embeddings.features) == 10


def test_missing_label_column_names_the_columns():
    with pytest.raises(KeyError, match="'cell_state'.*lacks"):
        _fit(OnlineEvalCallback(label_key="cell_state"))


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="every_n_epochs"):
        OnlineEvalCallback(every_n_epochs=0)
    with pytest.raises(ValueError, match="temperature"):
        OnlineEvalCallback(temperature=0.0)


def test_ddp_gathers_every_cell_once_and_only_rank_zero_logs(tmp_path):
    n_samples = 23  # odd: the distributed sampler pads one rank with a repeated sample
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path), str(n_samples)],
        cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    gathered = np.load(tmp_path / "gathered.npz")
    np.testing.assert_array_equal(gathered["keys"], np.arange(n_samples))
    single = OnlineEvalCallback(label_key="infection_state", k=5)
    _fit(single, n_samples=n_samples)
    np.testing.assert_array_equal(gathered["features"], single.last_embeddings.features)
    assert set(json.loads((tmp_path / "rank0.json").read_text())) == EVAL_TAGS
    assert json.loads((tmp_path / "rank1.json").read_text()) == []
