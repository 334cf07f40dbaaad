"""Overhead of ``OnlineEvalCallback`` on the epochs of the demo's training.

Generates the demo data (``dynaclr demo`` sizes by default), then runs the demo's ``fit.yml`` for a few
epochs twice with Lightning's ``SimpleProfiler``: with the callback (as the demo runs it, label_key
``infection_state``) and without it. Reports the seconds spent in the callback's hooks, the training
epoch time (validation included) of both runs, and their ratios.

Run: ``.venv/bin/python benchmarks/online_eval.py [--epochs 2] [--fovs-per-well 5] [--skip-baseline]``
(target: callback <= 10 % of the epoch time).
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import yaml

from dynaclr.cli import run_lightning_cli
from dynaclr.demo.run import DemoSettings, prepare_fit


def _fit(workdir: Path, config: dict, with_callback: bool) -> dict[str, float]:
    config = yaml.safe_load(yaml.safe_dump(config))
    config["trainer"]["logger"]["init_args"]["save_dir"] = str(workdir / ("logs_on" if with_callback else "logs_off"))
    config["trainer"]["callbacks"] = [
        c for c in config["trainer"]["callbacks"] if with_callback or "OnlineEvalCallback" not in c["class_path"]
    ]
    config["trainer"]["enable_progress_bar"] = False
    path = workdir / f"fit_{with_callback}.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    cli = run_lightning_cli("fit", ["-c", str(path), "--trainer.profiler", "simple"])
    durations = cli.trainer.profiler.recorded_durations
    epochs = durations["run_training_epoch"]
    callback = sum(sum(v) for k, v in durations.items() if k.startswith("[Callback]OnlineEvalCallback"))
    return {"epoch_s": float(np.sum(epochs)), "n_epochs": len(epochs), "callback_s": float(callback)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--fovs-per-well", type=int, default=DemoSettings.fovs_per_well)
    parser.add_argument("--n-timepoints", type=int, default=DemoSettings.n_timepoints)
    parser.add_argument("--skip-baseline", action="store_true", help="only the run with the callback")
    args = parser.parse_args()
    settings = replace(
        DemoSettings(), fovs_per_well=args.fovs_per_well, n_timepoints=args.n_timepoints, max_epochs=args.epochs
    )
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        _, config = prepare_fit(workdir, settings)
        on = _fit(workdir, config, with_callback=True)
        off = None if args.skip_baseline else _fit(workdir, config, with_callback=False)
    print(f"settings: fovs_per_well={settings.fovs_per_well} n_timepoints={settings.n_timepoints} epochs={args.epochs}")
    print(f"with callback:    {on['epoch_s'] / on['n_epochs']:.2f} s/epoch, callback hooks {on['callback_s']:.2f} s")
    print(f"callback hooks / epoch time: {on['callback_s'] / on['epoch_s']:.3f}")
    if off is not None:
        print(f"without callback: {off['epoch_s'] / off['n_epochs']:.2f} s/epoch")
        print(f"epoch time with / without:   {on['epoch_s'] / off['epoch_s']:.3f}")


if __name__ == "__main__":
    main()
