"""Write stores without losing an existing one when writing fails."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable
from pathlib import Path


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
