"""The ``dynaclr`` command line: train, predict and evaluate.

``fit``, ``validate``, ``test`` and ``predict`` run a LightningCLI (viscy-utils' ``VisCyCLI``) configured
by one or more ``-c/--config`` YAML files (later files override earlier ones). The linear-classifier
commands evaluate embeddings written by ``predict``. Everything heavy (torch, Lightning, sklearn) is
imported only when a command runs, so ``dynaclr --help`` answers immediately; the help of the Lightning
subcommands (``dynaclr fit --help``) is cached after its first rendering (:mod:`viscy_utils.help_cache`).
"""

from __future__ import annotations

import sys

import click

from dynaclr.demo.run import DemoSettings

__all__ = ["dynaclr", "main"]

_LIGHTNING_SUBCOMMANDS = {
    "fit": "Train a model (e.g. dynaclr fit -c examples/configs/fit.yml).",
    "validate": "Run one validation epoch.",
    "test": "Run one test epoch.",
    "predict": "Write embeddings with a trained model (e.g. dynaclr predict -c examples/configs/predict.yml).",
}


def run_lightning_cli(subcommand: str, args: list[str]):
    """Run a VisCy LightningCLI subcommand (:func:`viscy_utils.cli.run_cli`) with the given arguments.

    Parameters
    ----------
    subcommand : str
        One of ``fit``, ``validate``, ``test``, ``predict``.
    args : list[str]
        Arguments after the subcommand, e.g. ``["-c", "fit.yml", "--trainer.fast_dev_run", "true"]``.

    Returns
    -------
    VisCyCLI
        The CLI after the run, with its ``trainer``, ``model`` and ``datamodule``.
    """
    from viscy_utils.cli import run_cli

    return run_cli([subcommand, *args], description="DynaCLR: contrastive learning of cell dynamics.")


def _lightning_command(subcommand: str, short_help: str) -> click.Command:
    """A click command that hands all its arguments (including ``--help``) to the LightningCLI."""

    def callback(args: tuple[str, ...]) -> None:
        from viscy_utils.help_cache import run_with_help_cache

        run_with_help_cache(
            [sys.argv[0], subcommand, *args],
            lambda: run_lightning_cli(subcommand, list(args)),
            packages=("viscy_utils", "dynaclr"),
        )

    return click.Command(
        name=subcommand,
        callback=callback,
        params=[click.Argument(["args"], nargs=-1, type=click.UNPROCESSED)],
        help=f"{short_help}\n\nAll options are LightningCLI options: see `dynaclr {subcommand} --help`.",
        short_help=short_help,
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []},
        add_help_option=False,
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def dynaclr() -> None:
    """DynaCLR: train, predict and evaluate contrastive models of cell dynamics."""


for _name, _short_help in _LIGHTNING_SUBCOMMANDS.items():
    dynaclr.add_command(_lightning_command(_name, _short_help))


_config_option = click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False),
    required=True,
    help="YAML configuration file.",
)


@dynaclr.command("train-linear-classifier", short_help="Train a linear classifier on cell embeddings")
@_config_option
def train_linear_classifier(config_path: str) -> None:
    """Train a linear classifier on annotated cell embeddings and save it in the config's model_dir."""
    from dynaclr.linear_classifier_commands import train_from_config

    train_from_config(config_path)


@dynaclr.command("apply-linear-classifier", short_help="Apply a trained linear classifier to new embeddings")
@_config_option
def apply_linear_classifier(config_path: str) -> None:
    """Predict labels for cell embeddings with a linear classifier from the config's model_dir."""
    from dynaclr.linear_classifier_commands import apply_from_config

    apply_from_config(config_path)


@dynaclr.command("demo", short_help="Train and evaluate DynaCLR on synthetic data, offline, on the CPU")
@click.option("--workdir", type=click.Path(file_okay=False), default="dynaclr_demo", show_default=True)
@click.option("--fast", is_flag=True, help="A tiny run (seconds) that checks the pipeline; its probes mean nothing.")
@click.option(
    "--max-epochs",
    type=int,
    default=None,
    help=f"Training epochs (default: {DemoSettings.max_epochs}, or {DemoSettings.fast().max_epochs} with --fast).",
)
@click.option(
    "--seed", type=int, default=None, help=f"Seed of the data, weights and sampling (default {DemoSettings.seed})."
)
@click.option("--overwrite", is_flag=True, help="Replace a non-empty work folder.")
def demo(workdir: str, fast: bool, max_epochs: int | None, seed: int | None, overwrite: bool) -> None:
    """Generate two synthetic experiments, train DynaCLR on them, and probe the embeddings for cell state.

    Writes the data, configs, checkpoints, embeddings, report.md, metrics.json and embeddings.png to WORKDIR
    and prints the probe accuracies of the trained and of the randomly initialised encoder.
    """
    from pathlib import Path

    from dynaclr.demo.run import run_demo, settings_with

    settings = settings_with(DemoSettings.fast() if fast else DemoSettings(), max_epochs=max_epochs, seed=seed)
    metrics = run_demo(Path(workdir), settings, overwrite=overwrite)
    for name, label in (("trained", "trained encoder"), ("random", "random encoder: ")):
        click.echo(f"Linear probe accuracy on held-out FOVs, {label} {metrics['probe'][name]['accuracy']:.3f}")
    click.echo(f"Report: {Path(workdir) / 'report.md'}")


@dynaclr.command("rechunk", short_help="Copy an HCS plate to patch-friendly chunks (faster cell-patch reads)")
@click.argument("source", type=click.Path(exists=True, file_okay=False))
@click.argument("target", type=click.Path())
@click.option(
    "--chunks",
    nargs=5,
    type=int,
    default=(1, 1, 1, 256, 256),
    show_default=True,
    help="Chunk shape (T C Z Y X).",
)
@click.option(
    "--no-shard-frames", is_flag=True, help="OME-Zarr 0.5: one file per chunk instead of one shard per frame."
)
def rechunk(source: str, target: str, chunks: tuple[int, ...], no_shard_frames: bool) -> None:
    """Copy the plate SOURCE to the new path TARGET with small YX chunks, verifying every pixel.

    Channel names, transforms and normalization metadata are copied; SOURCE is only read and an
    existing TARGET is refused. See ``viscy_data.rechunk.rechunk_plate``.
    """
    from viscy_data.rechunk import rechunk_plate

    rechunk_plate(source, target, chunks=chunks, shard_frames=not no_shard_frames)
    click.echo(f"Wrote and verified {target}")


def main() -> None:
    """Entry point of the ``dynaclr`` console script."""
    dynaclr()


if __name__ == "__main__":
    main()
