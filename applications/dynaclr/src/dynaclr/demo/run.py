"""``dynaclr demo``: generate data, train, predict, probe and report, all offline on the CPU."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import yaml

__all__ = ["DemoSettings", "run_demo", "settings_with"]


@dataclass(frozen=True)
class DemoSettings:
    """Size of the demo data and recipe of its training.

    Parameters
    ----------
    fovs_per_well : int
        Positions per well (the last one of each well is held out for the probes).
    n_timepoints : int
        Frames per position.
    image_size : int
        Frame height and width in pixels.
    cells_per_fov : int
        Cells tracked from the first frame of each position.
    noise, relocalisation, debris_per_frame, gain_flicker, cell_variability : float
        Difficulty of the synthetic images (see ``viscy_data.synthetic.SyntheticExperiment``).
    cell_radius : float
        Mean cell radius in pixels; cells are kept one mean diameter apart (touching, not overlapping).
    backbone : str
        timm backbone of the ``ContrastiveEncoder``.
    patch_size : int
        Final patch size in pixels.
    batch_size : int
        Cells per training batch.
    max_epochs : int
        Training epochs.
    lr : float
        Peak learning rate (warm-up then cosine decay).
    temperature : float
        NT-Xent temperature.
    num_workers : int
        Data-loader threads.
    seed : int
        Seed of the data, of the initial weights and of the sampling.
    """

    fovs_per_well: int = 5
    n_timepoints: int = 16
    image_size: int = 160
    cells_per_fov: int = 10
    noise: float = 0.15
    relocalisation: float = 0.25
    debris_per_frame: int = 60
    gain_flicker: float = 0.3
    cell_variability: float = 1.0
    cell_radius: float = 5.5
    backbone: str = "convnext_atto"
    patch_size: int = 32
    batch_size: int = 128
    max_epochs: int = 25
    lr: float = 2e-3
    temperature: float = 0.2
    num_workers: int = 2
    seed: int = 0

    @classmethod
    def fast(cls) -> DemoSettings:
        """A tiny run for tests: small images, few cells, one epoch (the probes are not meaningful)."""
        return cls(
            fovs_per_well=2, n_timepoints=6, image_size=64, cells_per_fov=5, patch_size=32, batch_size=16, max_epochs=1
        )


def _write_yaml(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _predict(workdir: Path, name: str, data, settings: DemoSettings, ckpt_path: Path | None) -> Path:
    from dynaclr.demo.configs import predict_config
    from viscy_utils.cli import run_cli

    output = workdir / f"embeddings_{name}.zarr"
    config = predict_config(
        output,
        data.experiments_yaml,
        workdir / "logs" / f"predict_{name}",
        backbone=settings.backbone,
        patch_size=settings.patch_size,
        batch_size=256,
        num_workers=settings.num_workers,
        seed=settings.seed,
    )
    args = ["-c", str(_write_yaml(workdir / f"predict_{name}.yml", config))]
    if ckpt_path is not None:
        args += ["--ckpt_path", str(ckpt_path)]
    run_cli(["predict", *args])
    return output


def _report(metrics: dict, settings: DemoSettings) -> str:
    trained, random = metrics["probe"]["trained"], metrics["probe"]["random"]
    lines = [
        "# DynaCLR demo report",
        "",
        "Two synthetic time-lapse experiments (reporters GFP every 30 min and mCherry every 20 min; one uninfected",
        "and two infected wells each) were generated, a DynaCLR encoder was trained on them with",
        "`ContrastiveModule` + `NTXentHCL` and `MultiExperimentDataModule` (experiment-aware, condition-balanced,",
        "temporally enriched, leaky batches), and the infection state of every cell was read out with a linear",
        "probe trained on some FOVs and tested on held-out FOVs that training never saw.",
        "",
        "| encoder | probe accuracy (held-out FOVs) |",
        "|---|---|",
        f"| trained DynaCLR | {trained['accuracy']:.3f} |",
        f"| same encoder, random initialisation | {random['accuracy']:.3f} |",
        f"| majority class | {trained['chance_accuracy']:.3f} |",
        "",
        f"Probe cells: {trained['n_train']} training, {trained['n_test']} test. "
        f"Training took {metrics['fit_seconds']:.0f} s on the CPU.",
        "",
        "![embeddings](embeddings.png)",
        "",
        "## Online evaluation during training",
        "",
        "`OnlineEvalCallback` evaluated the embeddings of the held-out FOVs (the validation set) after every epoch:",
        "effective rank (near 1 would mean collapse), weighted k-NN and linear-probe accuracy of the cell state",
        "(trained and tested on different held-out FOVs), and Spearman correlation of embedding and time distance",
        "along tracks. Final values:",
        "",
        "| metric | final value |",
        "|---|---|",
        *(f"| `{tag}` | {value:.3f} |" for tag, value in metrics["online_eval"].items()),
        "",
        "![online metrics](online_metrics.png)",
        "",
        "## Settings",
        "",
        "```yaml",
        yaml.safe_dump(asdict(settings), sort_keys=False).rstrip(),
        "```",
        "",
        "Re-run the training with `dynaclr fit -c fit.yml` and the embeddings with",
        "`dynaclr predict -c predict_trained.yml --ckpt_path checkpoints/last.ckpt`.",
    ]
    return "\n".join(lines) + "\n"


def prepare_fit(workdir: Path, settings: DemoSettings) -> tuple:
    """Write the demo's synthetic data under ``workdir/data`` and build its ``dynaclr fit`` configuration.

    Returns
    -------
    tuple
        The written data (``write_demo_data``'s result: experiments YAML, held-out FOVs, ...) and the fit
        configuration as a dict.
    """
    from dynaclr.demo.configs import fit_config, read_patch_size
    from dynaclr.demo.data import demo_experiments, write_demo_data

    experiments = demo_experiments(
        settings.fovs_per_well,
        settings.n_timepoints,
        settings.image_size,
        settings.cells_per_fov,
        settings.seed,
        noise=settings.noise,
        relocalisation=settings.relocalisation,
        debris_per_frame=settings.debris_per_frame,
        gain_flicker=settings.gain_flicker,
        cell_variability=settings.cell_variability,
        cell_radius=settings.cell_radius,
        min_distance=2 * settings.cell_radius,
        border_margin=read_patch_size(settings.patch_size) / 2,
    )
    data = write_demo_data(workdir / "data", experiments, num_workers=settings.num_workers)
    config = fit_config(
        workdir,
        data.experiments_yaml,
        data.held_out_fovs,
        backbone=settings.backbone,
        patch_size=settings.patch_size,
        batch_size=settings.batch_size,
        max_epochs=settings.max_epochs,
        lr=settings.lr,
        temperature=settings.temperature,
        num_workers=settings.num_workers,
        seed=settings.seed,
    )
    return data, config


def run_demo(workdir: Path, settings: DemoSettings = DemoSettings(), overwrite: bool = False) -> dict:
    """Run the whole demo in ``workdir`` and return its metrics.

    Writes ``data/`` (plates, tracks, ``experiments.yml``), ``fit.yml``, ``checkpoints/``, ``logs/fit``
    (TensorBoard), ``embeddings_trained.zarr``, ``embeddings_random.zarr``, ``embeddings.png``,
    ``online_metrics.png``, ``metrics.json`` and ``report.md``.

    Parameters
    ----------
    workdir : Path
        Working folder; it must be empty or absent unless ``overwrite``.
    settings : DemoSettings
        Data size and training recipe.
    overwrite : bool
        Delete an existing non-empty ``workdir`` first.

    Returns
    -------
    dict
        The content of ``metrics.json``.

    Raises
    ------
    FileExistsError
        If ``workdir`` is not empty and ``overwrite`` is False.
    """
    from dynaclr.demo.evaluate import (
        labelled_embeddings,
        plot_embeddings,
        plot_online_metrics,
        probe_accuracy,
        read_online_metrics,
    )
    from viscy_utils.cli import run_cli

    workdir = Path(workdir)
    if workdir.exists() and any(workdir.iterdir()):
        if not overwrite:
            raise FileExistsError(f"Demo folder {workdir} is not empty; choose another one or pass --overwrite.")
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)

    data, config = prepare_fit(workdir, settings)
    start = time.perf_counter()
    run_cli(["fit", "-c", str(_write_yaml(workdir / "fit.yml", config))])
    fit_seconds = time.perf_counter() - start
    online = read_online_metrics(workdir / "logs" / "fit" / "version_0")
    plot_online_metrics(online, workdir / "online_metrics.png")

    embeddings = {
        "trained": _predict(workdir, "trained", data, settings, workdir / "checkpoints" / "last.ckpt"),
        "random": _predict(workdir, "random", data, settings, ckpt_path=None),
    }
    probes, views = {}, {}
    for name, path in embeddings.items():
        features, cells = labelled_embeddings(path, data.ground_truth)
        probes[name] = asdict(probe_accuracy(features, cells, data.held_out_fovs))
        views[f"{name} encoder"] = cells
    plot_embeddings(views, workdir / "embeddings.png")

    metrics = {
        "probe": probes,
        "trained_minus_random": probes["trained"]["accuracy"] - probes["random"]["accuracy"],
        "fit_seconds": fit_seconds,
        "online_eval": {tag: values[-1][1] for tag, values in online.items() if values},
        "held_out_fovs": data.held_out_fovs,
        "settings": asdict(settings),
    }
    (workdir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    (workdir / "report.md").write_text(_report(metrics, settings))
    return metrics


def settings_with(base: DemoSettings, **changes: int | float | None) -> DemoSettings:
    """``base`` with the given non-None fields replaced (command-line overrides)."""
    return replace(base, **{key: value for key, value in changes.items() if value is not None})
