"""The command lines keep library noise out of their output, and write AnnData stores in Zarr v3."""

import logging
import sys
import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import zarr
from lightning.pytorch import LightningDataModule, LightningModule

from viscy_utils._quiet import silence_library_noise
from viscy_utils.cli import VisCyCLI
from viscy_utils.store import write_anndata_zarr
from viscy_utils.trainer import VisCyTrainer


def test_lightning_tips_are_dropped_and_other_records_kept(caplog):
    silence_library_noise()
    silence_library_noise()  # idempotent
    log = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    assert sum(type(f).__name__ == "_DropLightningTips" for f in log.filters) == 1
    with caplog.at_level(logging.INFO, logger="lightning.pytorch.utilities.rank_zero"):
        log.info("💡 Tip: For seamless cloud logging, try installing [litlogger](https://pypi.org/project/litlogger/)")
        log.info("💡 Tip: For seamless cloud uploads, try installing [litmodels](https://pypi.org/project/litmodels/)")
        log.info("GPU available: False, used: False")
    assert [record.getMessage() for record in caplog.records] == ["GPU available: False, used: False"]


def test_only_lightnings_leafspec_deprecation_is_ignored():
    message = "`isinstance(treespec, LeafSpec)` is deprecated, use `isinstance(treespec, TreeSpec)` instead."
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        silence_library_noise()
        for module in ("lightning.pytorch.utilities._pytree", "my_package.trees"):
            warnings.warn_explicit(message, FutureWarning, "file.py", 1, module=module)
        warnings.warn_explicit(
            "another deprecation", FutureWarning, "file.py", 1, module="lightning.pytorch.utilities._pytree"
        )
    assert [(str(w.message), w.category) for w in caught] == [
        (message, FutureWarning),
        ("another deprecation", FutureWarning),
    ]


def test_cli_args_given_with_a_busy_sys_argv_do_not_warn(monkeypatch):
    argv = ["dynaclr", "demo", "--fast"]
    monkeypatch.setattr(sys, "argv", argv)
    with warnings.catch_warnings(record=True) as caught, pytest.raises(SystemExit):
        warnings.simplefilter("always")
        VisCyCLI(
            model_class=LightningModule,
            datamodule_class=LightningDataModule,
            trainer_class=VisCyTrainer,
            subclass_mode_model=True,
            subclass_mode_data=True,
            args=["fit", "--print_config"],
        )
    assert not [w for w in caught if "args parameter" in str(w.message)]
    assert sys.argv is argv and sys.argv == ["dynaclr", "demo", "--fast"]


def test_anndata_store_is_zarr_v3_and_global_settings_are_untouched(tmp_path):
    obs = pd.DataFrame({"fov_name": ["A/1/0", "A/1/1"]}, index=["0", "1"])
    adata = ad.AnnData(X=np.arange(6, dtype=np.float32).reshape(2, 3), obs=obs)
    before = ad.settings.zarr_write_format
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        write_anndata_zarr(adata, tmp_path / "emb.zarr", overwrite=False)
    assert [str(w.message) for w in caught] == []
    assert zarr.open_group(tmp_path / "emb.zarr", mode="r").metadata.zarr_format == 3
    assert ad.settings.zarr_write_format == before
    back = ad.read_zarr(tmp_path / "emb.zarr")
    np.testing.assert_array_equal(back.X, adata.X)
    assert back.obs["fov_name"].tolist() == ["A/1/0", "A/1/1"]
