"""Write stores without losing an existing one when writing fails."""

from __future__ import annotations

import contextlib
import shutil
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from anndata import AnnData


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def write_replacing(write: Callable[[Path], None], output_path: Path, overwrite: bool) -> None:
    """Write to a sibling temporary path, then move it into place.

    An existing store is only replaced (with ``overwrite``) once the new one is complete.
    """
    output_path.parent.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex[:8]
    staging = output_path.with_name(f".{output_path.name}.tmp-{token}")
    try:
        write(staging)
        if output_path.exists() or output_path.is_symlink():
            if not overwrite:
                raise FileExistsError(f"Output path {output_path} already exists.")
            retired = output_path.with_name(f".{output_path.name}.old-{token}")
            output_path.rename(retired)
            staging.rename(output_path)
            _remove(retired)
        else:
            staging.rename(output_path)
    finally:
        if staging.exists():
            _remove(staging)


@contextlib.contextmanager
def zarr3_write_settings() -> Iterator[None]:
    """Scoped anndata settings for writing an AnnData store in Zarr format 3, unsharded.

    The format is chosen explicitly (anndata still defaults to Zarr v2 and warns that this will change)
    and only inside the ``with`` block: anndata's global settings are left as they were. Nullable string
    columns are allowed. zarr's note that consolidated metadata is not yet part of the Zarr v3
    specification is not shown (anndata always consolidates; zarr-python and anndata read it).
    """
    import anndata as ad

    options = {"zarr_write_format": 3}
    if hasattr(ad.settings, "auto_shard_zarr_v3"):
        options["auto_shard_zarr_v3"] = False
    if hasattr(ad.settings, "allow_write_nullable_strings"):
        options["allow_write_nullable_strings"] = True
    with ad.settings.override(**options), warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="Consolidated metadata is currently not part in the Zarr format 3", module="zarr"
        )
        yield


def write_anndata_zarr(adata: AnnData, output_path: Path, overwrite: bool) -> None:
    """Write an AnnData store in Zarr format 3 (:func:`zarr3_write_settings`) through :func:`write_replacing`."""
    with zarr3_write_settings():
        write_replacing(adata.write_zarr, output_path, overwrite)
