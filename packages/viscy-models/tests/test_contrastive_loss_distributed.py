"""gather_distributed=True on a real 2-process gloo group equals the single-process loss on the global batch."""

import os
import subprocess
import sys
from pathlib import Path

import torch
from _ddp_loss_gather_script import ESTIMATORS, LOSS_KWARGS, PAIRS_PER_RANK, model, rank_inputs

from viscy_models.contrastive.loss import NTXentHCL

SCRIPT = Path(__file__).with_name("_ddp_loss_gather_script.py")


def _single_process(estimator: str) -> dict:
    net = model()
    inputs = torch.cat([rank_inputs(rank) for rank in range(len(PAIRS_PER_RANK))])
    offsets = [0, PAIRS_PER_RANK[0]]
    labels = torch.cat([torch.cat([torch.arange(n)] * 2) + o for n, o in zip(PAIRS_PER_RANK, offsets, strict=True)])
    loss = NTXentHCL(estimator=estimator, **LOSS_KWARGS)(net(inputs), labels)
    loss.backward()
    return {"loss": loss.detach(), "weight": net.weight.grad, "bias": net.bias.grad}


def test_two_rank_gloo_gather_matches_single_process(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path)], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for estimator in ESTIMATORS:
        expected = _single_process(estimator)
        for rank in range(len(PAIRS_PER_RANK)):
            saved = torch.load(tmp_path / f"{estimator}_rank{rank}.pt")
            for key in ("loss", "weight", "bias"):
                torch.testing.assert_close(saved[key], expected[key], rtol=1e-5, atol=1e-6, msg=f"{estimator} {key}")
