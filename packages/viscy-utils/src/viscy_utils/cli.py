"""The ``viscy`` command line: a LightningCLI with the VisCyTrainer subcommands.

Usage: ``viscy {fit,validate,test,predict,preprocess,export,precompute,convert_to_anndata} -c config.yml``.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from datetime import datetime

import torch
from jsonargparse import lazy_instance
from lightning.pytorch import LightningDataModule, LightningModule
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import TensorBoardLogger

from viscy_utils._quiet import silence_library_noise
from viscy_utils.checkpoint import is_checkpoint_file_path, read_checkpoint
from viscy_utils.help_cache import START_TIME_FORMAT
from viscy_utils.trainer import VisCyTrainer

__all__ = ["VisCyCLI", "main", "run_cli"]

_EXTRA_SUBCOMMANDS = ("preprocess", "export", "precompute", "convert_to_anndata")
_WITHOUT_MODEL = {"preprocess", "precompute", "convert_to_anndata"}
_WITHOUT_DATA = {"preprocess", "precompute", "export", "convert_to_anndata"}
_DESCRIPTION = "Computer vision models for single-cell phenotyping."


class VisCyCLI(LightningCLI):
    """LightningCLI with the ``preprocess``, ``export``, ``precompute`` and ``convert_to_anndata`` subcommands."""

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        """Lightning's subcommands plus the VisCyTrainer ones (which skip the ``model`` argument)."""
        subcommands = LightningCLI.subcommands()
        subcommands.update({name: {"model"} for name in _EXTRA_SUBCOMMANDS})
        return subcommands

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """Default the trainer logger to a TensorBoardLogger versioned by the start time."""
        parser.set_defaults(
            {
                "trainer.logger": lazy_instance(
                    TensorBoardLogger,
                    save_dir="",
                    version=datetime.now().strftime(START_TIME_FORMAT),
                    log_graph=True,
                )
            }
        )

    def parse_arguments(self, parser: LightningArgumentParser, args: Sequence[str] | dict | None) -> None:
        """Parse ``args`` if given, else the command line.

        Programs that hand their own arguments over (``dynaclr fit``, the in-process ``dynaclr demo``) pass
        ``args`` while ``sys.argv`` holds theirs; only the program name is kept in ``sys.argv`` while parsing,
        so that Lightning does not warn about getting both.
        """
        if args is None:
            return super().parse_arguments(parser, args)
        argv = sys.argv
        sys.argv = argv[:1]
        try:
            super().parse_arguments(parser, args)
        finally:
            sys.argv = argv

    def _parse_ckpt_path(self) -> None:
        """Read hyperparameters from ``ckpt_path`` when they parse; otherwise keep the config as given.

        A ``ckpt_path`` file that does not exist or cannot be read fails here, naming the file, before
        anything is instantiated. Works around https://github.com/Lightning-AI/pytorch-lightning/issues/21255.
        """
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if is_checkpoint_file_path(ckpt_path):
            read_checkpoint(ckpt_path, mmap=True)
        try:
            return super()._parse_ckpt_path()
        except SystemExit:
            return None


_PACKAGE_LOGGERS = ("viscy_data", "viscy_models", "viscy_transforms", "viscy_utils", "dynaclr")
"""Parents of the workspace's module loggers (``logging.getLogger(__name__)``), shown like Lightning's own."""


def setup_environment() -> None:
    """Set the log level from ``VISCY_LOG_LEVEL`` (default INFO), allow TF32 matmuls, drop library noise.

    The level applies to Lightning's logger (``"lightning.pytorch"``, a library's, named as such) and to the
    workspace packages' loggers, which print to stderr as Lightning's do when the root logger has no handler.
    """
    silence_library_noise()
    level = os.environ.get("VISCY_LOG_LEVEL", logging.INFO)
    level = int(level) if str(level).isdigit() else str(level).upper()
    logging.getLogger("lightning.pytorch").setLevel(level)
    for name in _PACKAGE_LOGGERS:
        package_logger = logging.getLogger(name)
        package_logger.setLevel(level)
        if not logging.getLogger().hasHandlers() and not package_logger.handlers:
            package_logger.addHandler(logging.StreamHandler())
    torch.set_float32_matmul_precision("high")


_setup_environment = setup_environment  # historical name


def _subcommand(argv: Sequence[str]) -> str | None:
    """The first command-line token naming a subcommand (None for e.g. ``--help``)."""
    names = VisCyCLI.subcommands()
    return next((token for token in argv if token in names), None)


def run_cli(args: Sequence[str] | None = None, description: str = _DESCRIPTION) -> VisCyCLI:
    """Build and run the VisCy LightningCLI: the one way every VisCy command line runs Lightning.

    ``fit``, ``validate``, ``test`` and ``predict`` take a LightningModule (``model``) and a
    LightningDataModule (``data``) given by ``class_path`` in the config; ``preprocess``, ``precompute``
    and ``convert_to_anndata`` take neither and ``export`` no data module.

    Parameters
    ----------
    args : Sequence[str] | None
        The subcommand and its arguments, e.g. ``["fit", "-c", "fit.yml"]``; ``None`` parses the command
        line (``sys.argv[1:]``).
    description : str
        The ``--help`` description of the program.

    Returns
    -------
    VisCyCLI
        The CLI after the run, with its ``trainer``, ``model`` and ``datamodule``.
    """
    setup_environment()
    subcommand = _subcommand(sys.argv[1:] if args is None else args)
    require_model = subcommand not in _WITHOUT_MODEL
    require_data = subcommand not in _WITHOUT_DATA
    return VisCyCLI(
        model_class=LightningModule,
        datamodule_class=LightningDataModule if require_data else None,
        trainer_class=VisCyTrainer,
        seed_everything_default=42,
        subclass_mode_model=require_model,
        subclass_mode_data=require_data,
        parser_kwargs={"description": description},
        args=None if args is None else list(args),
    )


def main() -> None:
    """Entry point of the ``viscy`` console script."""
    run_cli()


if __name__ == "__main__":
    main()
