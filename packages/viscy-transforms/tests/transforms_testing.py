"""Helpers shared by the viscy-transforms tests."""

import torch


def identical_samples(batch_size: int = 8, shape: tuple[int, ...] = (1, 3, 16, 16)) -> torch.Tensor:
    """A batch whose samples are all the same volume: any difference in the output comes from the draws."""
    generator = torch.Generator().manual_seed(1)
    return torch.rand(shape, generator=generator).expand(batch_size, *shape).clone()


def n_distinct_samples(out: torch.Tensor) -> int:
    """Number of distinct samples along dim 0."""
    return len(torch.unique(out.flatten(1).cpu(), dim=0))
