"""Lightning Trainer with the extra VisCy subcommands: preprocess, export, precompute, convert_to_anndata.

``VisCyTrainer.fit`` also checks a ``ckpt_path`` file before training (readable, same keys and shapes
as the model) and adds :class:`~viscy_utils.callbacks.sigterm_checkpoint.SigtermCheckpoint`, so a fit
stopped with SIGTERM can be resumed with ``ckpt_path="last"``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

import torch
from lightning.pytorch import LightningDataModule, LightningModule, Trainer

from viscy_utils.callbacks.sigterm_checkpoint import SigtermCheckpoint
from viscy_utils.checkpoint import check_checkpoint_matches, is_checkpoint_file_path

__all__ = ["VisCyTrainer"]

_logger = logging.getLogger(__name__)

_EXPORT_AXES = {0: "batch_size", 1: "channels", 3: "num_rows", 4: "num_cols"}
_EXTERNAL_DATA_BYTES = 1 << 30


class VisCyTrainer(Trainer):
    """Trainer whose extra methods become ``viscy`` CLI subcommands (arguments from their signatures)."""

    def fit(
        self,
        model: LightningModule,
        train_dataloaders: Any = None,
        val_dataloaders: Any = None,
        datamodule: LightningDataModule | None = None,
        ckpt_path: str | Path | None = None,
        weights_only: bool | None = None,
    ) -> None:
        """Run the full optimization routine (``lightning.pytorch.Trainer.fit``), failing fast on a bad checkpoint.

        Parameters
        ----------
        model : LightningModule
            Model to fit.
        train_dataloaders : Any
            Training dataloaders, or a data module.
        val_dataloaders : Any
            Validation dataloaders.
        datamodule : LightningDataModule | None
            Data module providing the dataloaders.
        ckpt_path : str | Path | None
            Checkpoint to resume from: a file, or ``"last"``, ``"best"``, ``"hpc"``, ``"registry"``.
            A file is checked before anything else runs: it must exist, be readable and have the
            model's state-dict keys and shapes (when the model loads strictly).
        weights_only : bool | None
            Passed to ``torch.load`` when the checkpoint is loaded.

        Raises
        ------
        FileNotFoundError
            If ``ckpt_path`` names a file that does not exist.
        ValueError
            If that file is truncated, not a checkpoint, or made for another architecture (the message
            names the file and the first mismatching keys and shapes).
        """
        if is_checkpoint_file_path(ckpt_path) and model.strict_loading:
            check_checkpoint_matches(model, ckpt_path)
        if not any(isinstance(callback, SigtermCheckpoint) for callback in self.callbacks):
            self.callbacks.append(SigtermCheckpoint())
        return super().fit(model, train_dataloaders, val_dataloaders, datamodule, ckpt_path, weights_only)

    def preprocess(
        self,
        data_path: Path,
        channel_names: list[str] | Literal[-1] = -1,
        num_workers: int = 1,
        block_size: int = 32,
        model: LightningModule | None = None,
    ) -> None:
        """Compute dataset statistics for normalization.

        Writes ``.zattrs["normalization"]`` to the plate and to each position (see
        :func:`viscy_utils.meta_utils.generate_normalization_metadata`).

        Parameters
        ----------
        data_path : Path
            HCS OME-Zarr plate.
        channel_names : list[str] | -1
            Channels to compute statistics for, -1 for all.
        num_workers : int
            Number of positions read in parallel.
        block_size : int
            Spacing in pixels of the YX sampling grid.
        model : LightningModule | None
            Ignored (accepted so that a full training config can be reused).

        Raises
        ------
        ValueError
            If a channel name is not in the plate.
        """
        from iohub.ngff import open_ome_zarr

        from viscy_utils.meta_utils import generate_normalization_metadata

        if model is not None:
            _logger.warning("Ignoring model configuration during preprocessing.")
        channel_ids: list[int] | Literal[-1] = -1
        if channel_names != -1:
            with open_ome_zarr(data_path, layout="hcs", mode="r") as dataset:
                available = list(dataset.channel_names)
            unknown = [name for name in channel_names if name not in available]
            if unknown:
                raise ValueError(f"Channels {unknown} are not in {data_path}; available channels: {available}.")
            channel_ids = [available.index(name) for name in channel_names]
        generate_normalization_metadata(
            zarr_dir=data_path, num_workers=num_workers, channel_ids=channel_ids, grid_spacing=block_size
        )

    def export(self, model: LightningModule, export_path: Path, ckpt_path: Path, format: str = "onnx") -> None:
        """Export the model for deployment.

        The checkpoint's ``state_dict`` is loaded and the model is exported with the dynamo ONNX exporter
        (opset 18), input named ``"input"`` and output ``"output"``, from ``model.example_input_array``.
        Batch, channel, row and column axes (0, 1, 3, 4) are exported as dynamic where the model allows it;
        depth (axis 2) stays static.

        Parameters
        ----------
        model : LightningModule
            Model with an ``example_input_array`` of shape (B, C, Z, Y, X).
        export_path : Path
            ONNX file to write.
        ckpt_path : Path
            Lightning checkpoint with a ``state_dict``.
        format : str
            Only ``"onnx"`` is supported.

        Raises
        ------
        NotImplementedError
            For a format other than ONNX.
        ValueError
            If the model has no ``example_input_array``.
        """
        from lightning.pytorch.utilities.compile import _maybe_unwrap_optimized

        from viscy_utils._optional import import_optional

        if format.lower() != "onnx":
            raise NotImplementedError(f"Export format '{format}'")
        import_optional("onnx")
        import_optional("onnxscript")
        model = _maybe_unwrap_optimized(model)
        if model.example_input_array is None:
            raise ValueError(f"{type(model).__name__} has no example_input_array to trace the export with.")
        self.strategy._lightning_module = model
        state_dict = torch.load(ckpt_path, weights_only=True, map_location="cpu")["state_dict"]
        model.load_state_dict(state_dict)
        model.eval()
        parameter_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
        model.to_onnx(
            export_path,
            input_sample=model.example_input_array,
            export_params=True,
            opset_version=18,
            input_names=["input"],
            output_names=["output"],
            dynamic_shapes=({axis: torch.export.Dim.AUTO for axis in _EXPORT_AXES},),
            external_data=parameter_bytes > _EXTERNAL_DATA_BYTES,
            dynamo=True,
            verbose=False,
        )
        _logger.info(f"ONNX exported at {export_path}")

    def precompute(
        self,
        data_path: Path,
        output_path: Path,
        channel_names: list[str],
        subtrahends: list[Literal["mean"] | float],
        divisors: list[Literal["std"] | tuple[float, float]],
        image_array_key: str = "0",
        include_wells: list[str] | None = None,
        exclude_fovs: list[str] | None = None,
        model: LightningModule | None = None,
    ) -> None:
        """Precompute normalized images.

        See :func:`viscy_utils.precompute.precompute_array` for the parameters; ``model`` is ignored.
        """
        from viscy_utils.precompute import precompute_array

        precompute_array(
            data_path=data_path,
            output_path=output_path,
            channel_names=channel_names,
            subtrahends=subtrahends,
            divisors=divisors,
            image_array_key=image_array_key,
            include_wells=include_wells,
            exclude_fovs=exclude_fovs,
        )

    def convert_to_anndata(
        self,
        embeddings_path: Path,
        output_anndata_path: Path,
        overwrite: bool = False,
        model: LightningModule | None = None,
    ) -> None:
        """Convert an xarray dataset to an anndata dataset.

        Parameters
        ----------
        embeddings_path : Path
            Legacy xarray embedding zarr store.
        output_anndata_path : Path
            AnnData zarr store to write.
        overwrite : bool
            Replace an existing output store.
        model : LightningModule | None
            Ignored.
        """
        from viscy_utils.evaluation.annotation import convert

        if model is not None:
            _logger.warning("Ignoring model configuration during conversion to AnnData.")
        convert(
            embeddings_ds=Path(embeddings_path),
            output_path=Path(output_anndata_path),
            overwrite=overwrite,
            return_anndata=False,
        )
        _logger.info(f"Anndata saved at: {output_anndata_path}")
