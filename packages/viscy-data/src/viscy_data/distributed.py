"""torch.distributed state (rank, world size) and a sampler giving each rank a contiguous shard of the dataset.

:func:`is_distributed`, :func:`get_rank` and :func:`get_world_size` are the one place viscy-data, viscy-utils
and dynaclr ask whether a process group is running; outside one they answer as a single process would.
"""

from collections.abc import Iterator

import torch
from torch import distributed as dist
from torch.utils.data import DistributedSampler

__all__ = ["ShardedDistributedSampler", "get_rank", "get_world_size", "is_distributed"]


def is_distributed() -> bool:
    """Whether a torch.distributed process group is initialized (of any size, including 1)."""
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    """Rank of this process in the default process group, 0 outside one."""
    return dist.get_rank() if is_distributed() else 0


def get_world_size() -> int:
    """Number of processes in the default process group, 1 outside one."""
    return dist.get_world_size() if is_distributed() else 1


class ShardedDistributedSampler(DistributedSampler):
    """Distributed sampler where each rank draws from its own contiguous block of indices.

    Shuffling happens within each block, so a rank only touches its shard of the data
    (cache friendly). The constructor is that of :class:`torch.utils.data.DistributedSampler`.
    """

    def _sharded_randperm(self, max_size: int, generator: torch.Generator) -> list[int]:
        """Interleave one shuffled block per replica so that ``[rank::num_replicas]`` picks block ``rank``."""
        blocks = [
            torch.randperm(self.num_samples, generator=generator)
            + min(i * self.num_samples, max_size - self.num_samples)
            for i in range(self.num_replicas)
        ]
        return torch.stack(blocks, dim=1).flatten().tolist()

    def __iter__(self) -> Iterator[int]:
        """Yield this rank's indices for the current epoch."""
        if self.shuffle:
            generator = torch.Generator()
            generator.manual_seed(self.seed + self.epoch)
            indices = self._sharded_randperm(len(self.dataset), generator)
        else:
            indices = list(range(len(self.dataset)))
        if not self.drop_last:
            padding_size = self.total_size - len(indices)
            if padding_size <= len(indices):
                indices += indices[:padding_size]
            else:
                indices += (indices * -(-padding_size // len(indices)))[:padding_size]
        else:
            indices = indices[: self.total_size]
        assert len(indices) == self.total_size
        indices = indices[self.rank : self.total_size : self.num_replicas]
        assert len(indices) == self.num_samples
        return iter(indices)
