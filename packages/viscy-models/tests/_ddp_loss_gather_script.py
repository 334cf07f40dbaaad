"""Run by test_contrastive_loss_distributed in a fresh interpreter: NTXentHCL(gather_distributed=True) on 2 gloo ranks.

Usage: ``python _ddp_loss_gather_script.py OUT_DIR``. Each rank saves its loss and its all-reduced gradients to
``OUT_DIR/{estimator}_rank{rank}.pt``. The ranks are forked before this interpreter runs any torch operation, so
no OpenMP thread pool is inherited (a fork from a process that already used one can deadlock).
"""

import socket
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from viscy_models.contrastive.loss import NTXentHCL

PAIRS_PER_RANK = (3, 5)  # unequal on purpose: the last batch of an epoch may be smaller
DIM_IN, DIM_OUT = 6, 4
ESTIMATORS = ("hcl", "robinson")
LOSS_KWARGS = {"temperature": 0.2, "beta": 0.5}


def rank_inputs(rank: int) -> torch.Tensor:
    """The ``2 * PAIRS_PER_RANK[rank]`` embeddings of one rank (anchors then positives)."""
    n = PAIRS_PER_RANK[rank]
    return torch.randn(2 * n, DIM_IN, generator=torch.Generator().manual_seed(100 + rank))


def model() -> torch.nn.Linear:
    """The same freshly seeded linear projection on every rank."""
    torch.manual_seed(0)
    return torch.nn.Linear(DIM_IN, DIM_OUT)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker(rank: int, world_size: int, port: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size)
    try:
        for estimator in ESTIMATORS:
            net = model()
            n = PAIRS_PER_RANK[rank]
            labels = torch.cat([torch.arange(n), torch.arange(n)])
            loss_fn = NTXentHCL(gather_distributed=True, estimator=estimator, **LOSS_KWARGS)
            loss = loss_fn(net(rank_inputs(rank)), labels)
            loss.backward()
            for param in net.parameters():  # what DistributedDataParallel does after backward
                dist.all_reduce(param.grad)
                param.grad /= world_size
            torch.save(
                {"loss": loss.detach(), "weight": net.weight.grad, "bias": net.bias.grad},
                Path(out_dir) / f"{estimator}_rank{rank}.pt",
            )
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    world_size = len(PAIRS_PER_RANK)
    mp.start_processes(
        _worker, args=(world_size, _free_port(), sys.argv[1]), nprocs=world_size, join=True, start_method="fork"
    )
