"""Forward + backward time and peak memory of ``NTXentHCL`` against pytorch-metric-learning's ``NTXentLoss``.

For B = 256, 1024 and 4096 pairs (2B embeddings of dimension 128, engine labels ``cat(arange(B), arange(B))``)
it times one forward + backward step of

- ``NTXentHCL(beta=0)`` and ``NTXentHCL(beta=0.5)`` (ours: one 2B x 2B similarity matrix), and
- ``NTXentLoss`` (PML: builds a (#positive pairs x #negative pairs) matrix, O(B^3) memory; run at B = 256 only,
  at B = 1024 it would try to allocate ~34 GB).

Every measurement runs in a fresh subprocess; peak memory is the growth of the process's peak resident set
size (``resource.getrusage(...).ru_maxrss``) over the step, after the inputs exist and the code has warmed up
on a tiny batch. On CUDA (``--device cuda``) it is ``torch.cuda.max_memory_allocated`` instead.

It also checks the values at B = 256: ours with beta=0 against ``NTXentLoss``, and with beta=0.5 against the
spec's formula evaluated directly in float64.

Times are the median wall-clock ("fwd+bwd ms") and process CPU time ("CPU ms") over the repeats; on a shared,
loaded machine the CPU time is the steadier of the two.

Run: ``python benchmarks/loss.py [--device cpu|cuda] [--repeats 3] [--threads N]``.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

PAIR_COUNTS = (256, 1024, 4096)
EMBEDDING_DIM = 128
TEMPERATURE = 0.07
PML_MAX_PAIRS = 256
METHODS = ("hcl_beta0", "hcl_beta0.5", "pml_ntxent")


def _inputs(pairs: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(pairs)
    embeddings = torch.randn(2 * pairs, EMBEDDING_DIM, generator=generator).to(device)
    labels = torch.cat([torch.arange(pairs), torch.arange(pairs)]).to(device)
    return embeddings.requires_grad_(True), labels


def _loss(method: str) -> torch.nn.Module:
    if method == "pml_ntxent":
        from pytorch_metric_learning.losses import NTXentLoss

        return NTXentLoss(temperature=TEMPERATURE)
    from viscy_models.contrastive.loss import NTXentHCL

    return NTXentHCL(temperature=TEMPERATURE, beta=float(method.removeprefix("hcl_beta")))


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _step(loss_fn: torch.nn.Module, embeddings: torch.Tensor, labels: torch.Tensor) -> float:
    embeddings.grad = None
    loss = loss_fn(embeddings, labels)
    loss.backward()
    return float(loss)


def _worker(method: str, pairs: int, device: str, repeats: int) -> dict:
    """Time and measure one (method, B) in this process; returns a JSON-able dict."""
    loss_fn = _loss(method)
    warm_embeddings, warm_labels = _inputs(8, device)
    _step(loss_fn, warm_embeddings, warm_labels)
    embeddings, labels = _inputs(pairs, device)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        baseline = torch.cuda.memory_allocated()
    else:
        baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    times, cpu_times = [], []
    for _ in range(repeats):
        _sync(device)
        start, cpu_start = time.perf_counter(), time.process_time()
        value = _step(loss_fn, embeddings, labels)
        _sync(device)
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    if device == "cuda":
        peak = torch.cuda.max_memory_allocated() - baseline
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - baseline
    return {
        "seconds": statistics.median(times),
        "cpu_seconds": statistics.median(cpu_times),
        "peak_bytes": peak,
        "loss": value,
    }


def _measure(method: str, pairs: int, device: str, repeats: int, threads: int) -> dict:
    command = [sys.executable, __file__, "--worker", method, str(pairs), "--device", device]
    command += ["--repeats", str(repeats), "--threads", str(threads)]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def _spec_formula(embeddings: torch.Tensor, labels: torch.Tensor, beta: float) -> float:
    """The spec's HCL formula evaluated directly in float64 (independent of the implementation)."""
    z = F.normalize(embeddings.detach().double(), dim=1)
    similarity = z @ z.T
    same = labels[:, None] == labels[None, :]
    negatives = ~same
    positives = same & ~torch.eye(len(labels), dtype=torch.bool)
    weights = torch.exp(beta * similarity) * negatives
    weights = weights * negatives.sum(1, keepdim=True) / weights.sum(1, keepdim=True)
    negative_term = (weights * torch.exp(similarity / TEMPERATURE)).sum(1)
    anchors, partners = positives.nonzero(as_tuple=True)
    positive_term = torch.exp(similarity[anchors, partners] / TEMPERATURE)
    return float((-torch.log(positive_term / (positive_term + negative_term[anchors]))).mean())


def _check_values(device: str) -> list[str]:
    embeddings, labels = _inputs(PML_MAX_PAIRS, device)
    with torch.no_grad():
        ours_plain = float(_loss("hcl_beta0")(embeddings, labels))
        pml = float(_loss("pml_ntxent")(embeddings, labels))
        ours_hard = float(_loss("hcl_beta0.5")(embeddings, labels))
    reference = _spec_formula(embeddings.cpu(), labels.cpu(), beta=0.5)
    return [
        f"B={PML_MAX_PAIRS}: NTXentHCL(beta=0) = {ours_plain:.6f}, NTXentLoss = {pml:.6f}, "
        f"|diff| = {abs(ours_plain - pml):.2e} (tolerance 1e-5)",
        f"B={PML_MAX_PAIRS}: NTXentHCL(beta=0.5) = {ours_hard:.6f}, spec formula (float64) = {reference:.6f}, "
        f"|diff| = {abs(ours_hard - reference):.2e} (tolerance 1e-5)",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch CPU threads")
    parser.add_argument("--worker", nargs=2, metavar=("METHOD", "PAIRS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.worker:
        print(json.dumps(_worker(args.worker[0], int(args.worker[1]), args.device, args.repeats)))
        return

    print(f"device={args.device} threads={torch.get_num_threads()} dim={EMBEDDING_DIM} t={TEMPERATURE}")
    header = f"{'B pairs':>8} {'method':>14} {'fwd+bwd ms':>11} {'CPU ms':>9} {'peak MiB':>9} {'loss':>10}"
    print(header)
    print("-" * len(header))
    results = {}
    for pairs in PAIR_COUNTS:
        for method in METHODS:
            if method == "pml_ntxent" and pairs > PML_MAX_PAIRS:
                print(f"{pairs:>8} {method:>14}   skipped: O(B^3) pos x neg matrix (~34 GB at B=1024)")
                continue
            repeats = 1 if method == "pml_ntxent" else args.repeats
            result = _measure(method, pairs, args.device, repeats, args.threads)
            results[pairs, method] = result
            print(
                f"{pairs:>8} {method:>14} {result['seconds'] * 1e3:>11.1f} {result['cpu_seconds'] * 1e3:>9.1f} "
                f"{result['peak_bytes'] / 2**20:>9.0f} {result['loss']:>10.5f}",
                flush=True,
            )
    for method in ("hcl_beta0", "hcl_beta0.5"):
        speedup = results[PML_MAX_PAIRS, "pml_ntxent"]["seconds"] / results[PML_MAX_PAIRS, method]["seconds"]
        print(f"speed-up of {method} over NTXentLoss at B={PML_MAX_PAIRS}: {speedup:.0f}x")
    for line in _check_values(args.device):
        print(line)


if __name__ == "__main__":
    main()
