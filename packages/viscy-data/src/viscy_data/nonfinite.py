"""What a data module does with NaN or infinite pixels in a batch (the ``nonfinite`` argument).

- ``"raise"`` (default): one device-side reduction over all image keys of the batch and a single
  host sync per batch (not per patch); if any pixel is NaN or infinite, a ``ValueError`` names the
  data module, the batch key, the number of bad pixels and the samples holding them.
- ``"zero"``: NaN and infinite pixels are replaced by 0 in place, on the device, without any sync.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import torch
from torch import Tensor

__all__ = ["NONFINITE_POLICIES", "NonFinitePolicy", "apply_nonfinite_policy", "check_nonfinite_policy"]

NonFinitePolicy = Literal["raise", "zero"]
NONFINITE_POLICIES = ("raise", "zero")


def check_nonfinite_policy(policy: str, owner: str) -> None:
    """Raise ``ValueError`` naming ``owner`` unless ``policy`` is one of :data:`NONFINITE_POLICIES`."""
    if policy not in NONFINITE_POLICIES:
        raise ValueError(f"{owner}: nonfinite must be one of {list(NONFINITE_POLICIES)}, got {policy!r}")


def apply_nonfinite_policy(batch: dict, keys: Iterable[str], policy: NonFinitePolicy, owner: str) -> None:
    """Check (``"raise"``) or repair (``"zero"``) the floating-point images ``batch[key]`` in place.

    Parameters
    ----------
    batch : dict
        Batch whose image tensors are checked; keys absent from it are skipped.
    keys : Iterable[str]
        Image keys, e.g. ``("anchor", "positive", "negative")``.
    policy : {"raise", "zero"}
        See the module notes.
    owner : str
        Name of the data module, shown in the error.

    Raises
    ------
    ValueError
        With ``"raise"``, if any image holds a NaN or infinite value.
    """
    images = {k: batch[k] for k in keys if isinstance(batch.get(k), Tensor) and batch[k].is_floating_point()}
    if not images:
        return
    if policy == "zero":
        for image in images.values():
            torch.nan_to_num_(image, nan=0.0, posinf=0.0, neginf=0.0)
        return
    flags = torch.stack([~torch.isfinite(image).all() for image in images.values()])
    if not bool(flags.any()):
        return
    problems = []
    for key, image in images.items():
        bad = ~torch.isfinite(image)
        per_sample = bad.flatten(1).sum(dim=1) if image.ndim > 1 else bad.long()
        samples = torch.nonzero(per_sample).flatten().tolist()
        if samples:
            problems.append(f"'{key}': {int(bad.sum())} NaN/Inf pixels in samples {samples[:10]}")
    raise ValueError(
        f"{owner}: the batch has non-finite pixels ({'; '.join(problems)}). Fix the images, or pass "
        "nonfinite='zero' to the data module to replace NaN/Inf pixels by 0."
    )
