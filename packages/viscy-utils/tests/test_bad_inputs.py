"""Bad checkpoints fail before training, naming the file; a fit stopped with SIGTERM resumes from ``last``."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from utils_fit_helpers import RandomRegressionData, SlowBatches, TinyRegression

from viscy_utils.cli import main
from viscy_utils.trainer import VisCyTrainer

TESTS_DIR = Path(__file__).resolve().parent


def _trainer(root: Path, **kwargs) -> VisCyTrainer:
    settings = dict(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False, enable_model_summary=False)
    settings.update(default_root_dir=root, enable_checkpointing=False, **kwargs)
    return VisCyTrainer(**settings)


@pytest.fixture
def checkpoint(tmp_path) -> Path:
    trainer = _trainer(tmp_path, max_steps=2)
    trainer.fit(TinyRegression(), RandomRegressionData())
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    return path


def _missing(path: Path) -> Path:
    return path.with_name("missing.ckpt")


def _truncated(path: Path) -> Path:
    truncated = path.with_name("truncated.ckpt")
    data = path.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    return truncated


def _text(path: Path) -> Path:
    text = path.with_name("notes.ckpt")
    text.write_text("not a checkpoint\n")
    return text


def _without_state_dict(path: Path) -> Path:
    other = path.with_name("weights.ckpt")
    torch.save({"weights": torch.zeros(2)}, other)
    return other


@pytest.mark.parametrize(
    ("make_path", "model", "error", "message"),
    [
        (_missing, TinyRegression(), FileNotFoundError, "checkpoint not found: {path}"),
        (_truncated, TinyRegression(), ValueError, r"checkpoint {path} \(\d+ bytes\) cannot be read: it is truncated"),
        (_text, TinyRegression(), ValueError, r"checkpoint {path} \(\d+ bytes\) cannot be read"),
        (_without_state_dict, TinyRegression(), KeyError, r"checkpoint {path} has no 'state_dict' entry"),
        (
            lambda path: path,
            TinyRegression(in_features=5),
            ValueError,
            r"checkpoint {path} does not match TinyRegression: 0 missing keys .* 1 keys with other shapes "
            r"\(first: \['net.0.weight: checkpoint \(1, 4\) vs model \(1, 5\)'\]\)",
        ),
        (
            lambda path: path,
            TinyRegression(hidden=3),
            ValueError,
            r"checkpoint {path} does not match TinyRegression: 2 missing keys \(first: \['net.2.bias', "
            r"'net.2.weight'\]\), 0 unexpected keys .* 2 keys with other shapes",
        ),
    ],
)
def test_fit_checks_ckpt_path_before_training(tmp_path, checkpoint, make_path, model, error, message):
    path = make_path(checkpoint)
    batches = SlowBatches()
    trainer = _trainer(tmp_path, max_steps=1, callbacks=[batches])
    data = RandomRegressionData(in_features=model.net[0].in_features)
    with pytest.raises(error, match=message.format(path=re.escape(str(path)))):
        trainer.fit(model, data, ckpt_path=path)
    assert batches.batches == 0


def _write_config(root: Path, delay: float) -> Path:
    callbacks = [
        {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint", "init_args": {"dirpath": str(root / "ckpts")}},
        {
            "class_path": "utils_fit_helpers.SlowBatches",
            "init_args": {"count_file": str(root / "batches"), "delay": delay},
        },
    ]
    config = {
        "model": {"class_path": "utils_fit_helpers.TinyRegression"},
        "data": {"class_path": "utils_fit_helpers.RandomRegressionData"},
        "trainer": {
            "accelerator": "cpu",
            "devices": 1,
            "logger": False,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "max_epochs": 1000,
            "default_root_dir": str(root),
            "callbacks": callbacks,
        },
    }
    path = root / "fit.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def _viscy(monkeypatch, *args: str) -> None:
    """Run the ``viscy`` entry point in this process."""
    monkeypatch.setattr(sys, "argv", ["viscy", *args])
    main()


@pytest.mark.parametrize(("make_path", "error"), [(_missing, FileNotFoundError), (_truncated, ValueError)])
def test_cli_names_an_unreadable_ckpt_path_before_instantiating(tmp_path, monkeypatch, checkpoint, make_path, error):
    path = make_path(checkpoint)
    config = _write_config(tmp_path, delay=0.0)
    with pytest.raises(error, match=re.escape(str(path))):
        _viscy(monkeypatch, "fit", "-c", str(config), "--ckpt_path", str(path))
    assert not (tmp_path / "batches").exists()


def test_sigterm_leaves_a_checkpoint_that_ckpt_path_last_resumes(tmp_path, monkeypatch):
    config = _write_config(tmp_path, delay=0.05)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS_DIR), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "viscy_utils.cli", "fit", "-c", str(config)]
    process = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    deadline = time.monotonic() + 300  # a cold start imports torch and lightning: allow for a busy machine
    while not (tmp_path / "batches").exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the fit did not start training:\n{process.communicate()[0][-3000:]}")
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    output = process.communicate(timeout=120)[0]
    last = tmp_path / "ckpts" / "last.ckpt"
    assert last.is_file(), output[-3000:]
    saved_step = torch.load(last, map_location="cpu", weights_only=False)["global_step"]
    assert saved_step >= 1

    # a new root for the resumed run's saved config.yaml; "last" is found in the ModelCheckpoint's dirpath
    resume = ["--ckpt_path", "last", "--trainer.max_steps", str(saved_step + 3)]
    _viscy(monkeypatch, "fit", "-c", str(config), *resume, "--trainer.default_root_dir", str(tmp_path / "resumed"))
    assert (tmp_path / "batches").read_text() == "3"  # this run trained 3 batches: it continued from saved_step
    assert list((tmp_path / "ckpts").glob(f"epoch=*-step={saved_step + 3}.ckpt"))
