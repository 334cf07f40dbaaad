"""gather_distributed=True on a real 2-process gloo group equals the single-process loss on the global batch."""

import socket
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from viscy_models.contrastive.loss import NTXentHCL

PAIRS_PER_RANK = (3, 5)  # unequal on purpose: the last batch of an epoch may be smaller
DIM_IN, DIM_OUT = 6, 4
ESTIMATORS = ("hcl", "robinson")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _inputs(rank: int) -> torch.Tensor:
    n = PAIRS_PER_RANK[rank]
    return torch.randn(2 * n, DIM_IN, generator=torch.Generator().manual_seed(100 + rank))


def _model() -> torch.nn.Linear:
    torch.manual_seed(0)
    return torch.nn.Linear(DIM_IN, DIM_OUT)


def _loss_kwargs(estimator: str) -> dict:
    return {"temperature": 0.2, "beta": 0.5, "estimator": estimator}


def _worker(rank: int, world_size: int, port: int, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size)
    try:
        for estimator in ESTIMATORS:
            model = _model()
            n = PAIRS_PER_RANK[rank]
            labels = torch.cat([torch.arange(n), torch.arange(n)])
            loss = NTXentHCL(gather_distributed=True, **_loss_kwargs(estimator))(model(_inputs(rank)), labels)
            loss.backward()
            for param in model.parameters():  # what DistributedDataParallel does after backward
                dist.all_reduce(param.grad)
                param.grad /= world_size
            torch.save(
                {"loss": loss.detach(), "weight": model.weight.grad, "bias": model.bias.grad},
                Path(out_dir) / f"{estimator}_rank{rank}.pt",
            )
    finally:
        dist.destroy_process_group()


def _single_process(estimator: str) -> dict:
    model = _model()
    inputs = torch.cat([_inputs(rank) for rank in range(len(PAIRS_PER_RANK))])
    offsets = [0, PAIRS_PER_RANK[0]]
    labels = torch.cat([torch.cat([torch.arange(n)] * 2) + o for n, o in zip(PAIRS_PER_RANK, offsets, strict=True)])
    loss = NTXentHCL(**_loss_kwargs(estimator))(model(inputs), labels)
    loss.backward()
    return {"loss": loss.detach(), "weight": model.weight.grad, "bias": model.bias.grad}


def test_two_rank_gloo_gather_matches_single_process(tmp_path):
    world_size = len(PAIRS_PER_RANK)
    # fork: the workers inherit the imported modules instead of re-importing torch (slow on a loaded CPU)
    mp.start_processes(
        _worker, args=(world_size, _free_port(), str(tmp_path)), nprocs=world_size, join=True, start_method="fork"
    )
    for estimator in ESTIMATORS:
        expected = _single_process(estimator)
        for rank in range(world_size):
            result = torch.load(tmp_path / f"{estimator}_rank{rank}.pt")
            for key in ("loss", "weight", "bias"):
                torch.testing.assert_close(result[key], expected[key], rtol=1e-5, atol=1e-6, msg=f"{estimator} {key}")
