"""All-gather of embeddings across DDP ranks that keeps gradients flowing to every rank's inputs."""

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ["gather_across_ranks", "gather_embeddings_and_labels"]


def _world_size() -> int:
    """Processes in the default group, 1 outside one (viscy-models depends on no workspace package, so it
    cannot use ``viscy_data.distributed.get_world_size``)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _gather_padded(local: Tensor, sizes: list[int]) -> list[Tensor]:
    max_size = max(sizes)
    padded = local.new_zeros((max_size, *local.shape[1:]))
    padded[: local.shape[0]] = local
    chunks = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(chunks, padded.contiguous())
    return [chunk[:size] for chunk, size in zip(chunks, sizes, strict=True)]


def _local_sizes(local: Tensor) -> list[int]:
    size = torch.tensor([local.shape[0]], dtype=torch.long, device=local.device)
    sizes = [torch.empty_like(size) for _ in range(_world_size())]
    dist.all_gather(sizes, size)
    return [int(s.item()) for s in sizes]


class _GatherWithGradient(torch.autograd.Function):
    """Concatenate every rank's tensor; backward sums the incoming gradients over ranks and keeps this rank's rows.

    Every rank computes the same global loss, so summing over ranks then letting DDP average the parameter
    gradients yields exactly the gradient of the global loss.
    """

    @staticmethod
    def forward(ctx, local: Tensor) -> Tensor:  # noqa: D102
        sizes = _local_sizes(local)
        rank = dist.get_rank()
        ctx.start = sum(sizes[:rank])
        ctx.stop = ctx.start + sizes[rank]
        return torch.cat(_gather_padded(local, sizes), dim=0)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # noqa: D102
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.start : ctx.stop]


def gather_across_ranks(local: Tensor) -> Tensor:
    """All-gather ``local`` (rows may differ per rank) along dim 0, differentiably.

    Parameters
    ----------
    local : Tensor
        (n_rank, ...) tensor of this rank.

    Returns
    -------
    Tensor
        (sum of n_rank, ...) rows of all ranks in rank order; the input itself when not distributed.
    """
    if _world_size() == 1:
        return local
    return _GatherWithGradient.apply(local)


def gather_embeddings_and_labels(embeddings: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Gather embeddings (with gradients) and labels from all ranks, offsetting labels per rank.

    Labels are taken as local identities (e.g. ``arange(B)`` for anchors and positives), so rank r's labels are
    shifted by the sum over lower ranks of ``max(label) + 1``, keeping identities of different ranks apart.

    Parameters
    ----------
    embeddings : Tensor
        (n, D) embeddings of this rank.
    labels : Tensor
        (n,) non-negative integer labels of this rank.

    Returns
    -------
    tuple[Tensor, Tensor]
        Global embeddings (N, D) and labels (N,).
    """
    if _world_size() == 1:
        return embeddings, labels
    if labels.numel() and int(labels.min()) < 0:
        raise ValueError("gather_distributed=True needs non-negative integer labels to offset them per rank")
    all_embeddings = gather_across_ranks(embeddings)
    sizes = _local_sizes(labels)
    label_chunks = _gather_padded(labels.detach(), sizes)
    offsets = torch.cumsum(
        torch.tensor([0] + [int(c.max()) + 1 if c.numel() else 0 for c in label_chunks[:-1]]), dim=0
    ).tolist()
    all_labels = torch.cat([chunk + offset for chunk, offset in zip(label_chunks, offsets, strict=True)])
    return all_embeddings, all_labels
