"""Batched augmentation chain vs MONAI applied per sample, on CPU.

Chain: random affine (rotation, scale, shear) -> random Gaussian smoothing -> random Gaussian noise, every
transform with prob=1.0, on a ``(64, 2, 1, 160, 160)`` batch. The reference applies ``monai.transforms`` to each
sample (keys ``ch_0``/``ch_1`` of shape ``(1, 1, 160, 160)``). Two batched layouts are timed: viscy_transforms'
MONAI-named wrappers on per-channel keys ``(64, 1, 1, 160, 160)`` (what DynaCLR's data modules produce), and the
``Batched*`` transforms on the stacked ``(64, 2, 1, 160, 160)`` tensor.

A 2-D case times the same chain on a ``(64, 2, 160, 160)`` batch ``(B, C, Y, X)`` (affine with one in-plane
rotation, two shears and (Y, X) scales; smoothing over Y and X): MONAI per sample on ``(1, 160, 160)`` keys vs the
``Batched*`` transforms on the stacked 2-D tensor. (The MONAI-named wrappers treat 4-D input as one per-sample
volume, so they have no batched 2-D row.)

Run: ``python benchmarks/transforms.py [--repeats N] [--batch-size B] [--size N] [--threads T]``.
"""

import argparse
import time
from collections.abc import Callable

import monai.transforms as mt
import torch

import viscy_transforms as vt

KEYS = ["ch_0", "ch_1"]
AFFINE = dict(prob=1.0, rotate_range=[3.14, 0.0, 0.0], shear_range=[0.0, 0.01, 0.01], scale_range=[0.0, 0.2, 0.2])
SMOOTH = dict(prob=1.0, sigma_x=(0.25, 0.75), sigma_y=(0.25, 0.75), sigma_z=(0.0, 0.0))
NOISE = dict(prob=1.0, mean=0.0, std=0.2)
# the same ranges in BatchedRandAffined's (kornia) semantics: scale_range holds magnification factors
BATCHED_AFFINE = dict(
    prob=1.0, rotate_range=[3.14, 0.0, 0.0], shear_range=[0.0, 0.01, 0.01], scale_range=[(1, 1), (0.8, 1.2), (0.8, 1.2)]
)
# 2-D: one rotation (the Y-X plane), the two 2-D shears and (Y, X) scales
AFFINE_2D = dict(prob=1.0, rotate_range=[3.14], shear_range=[0.01, 0.01], scale_range=[0.2, 0.2])
BATCHED_AFFINE_2D = dict(prob=1.0, rotate_range=[3.14], shear_range=[0.01, 0.01], scale_range=[(0.8, 1.2), (0.8, 1.2)])


def batched_chain() -> Callable[[dict], dict]:
    """The chain of this package's transforms, applied to the whole batch."""
    return mt.Compose(
        [
            vt.RandAffined(keys=KEYS, padding_mode="zeros", **AFFINE),
            vt.RandGaussianSmoothd(keys=KEYS, **SMOOTH),
            vt.RandGaussianNoised(keys=KEYS, **NOISE),
        ]
    ).set_random_state(0)


def batched_stacked_chain(affine: dict = BATCHED_AFFINE) -> Callable[[dict], dict]:
    """The ``Batched*`` chain on the stacked ``(B, 2, [Z,] Y, X)`` tensor."""
    chain = mt.Compose(
        [
            vt.BatchedRandAffined(keys=["image"], **affine),
            vt.BatchedRandGaussianSmoothd(keys=["image"], **SMOOTH),
            vt.BatchedRandGaussianNoised(keys=["image"], **NOISE),
        ]
    ).set_random_state(0)
    return lambda batch: chain({"image": torch.cat([batch[key] for key in KEYS], dim=1)})


def per_sample_chain(affine: dict = AFFINE) -> Callable[[dict], dict]:
    """The same chain with MONAI's transforms, applied sample by sample."""
    chain = mt.Compose(
        [
            mt.RandAffined(keys=KEYS, padding_mode="zeros", **affine),
            mt.RandGaussianSmoothd(keys=KEYS, **SMOOTH),
            mt.RandGaussianNoised(keys=KEYS, **NOISE),
        ]
    ).set_random_state(0)

    def apply(batch: dict) -> dict:
        samples = [chain({key: batch[key][i] for key in KEYS}) for i in range(len(batch[KEYS[0]]))]
        return {key: torch.stack([torch.as_tensor(sample[key]) for sample in samples]) for key in KEYS}

    return apply


def best_time(fn: Callable[[dict], dict], batch: dict, repeats: int) -> float:
    """Best wall time of ``repeats`` runs after one warm-up run."""
    fn(batch)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(batch)
        times.append(time.perf_counter() - start)
    return min(times)


def print_rows(title: str, rows: list[tuple[str, float]]) -> None:
    """Print timings with the speed-up over the first row."""
    print(title)
    print(f"{'implementation':<46}{'time (s)':>10}{'speed-up':>10}")
    for name, seconds in rows:
        print(f"{name:<46}{seconds:>10.3f}{rows[0][1] / seconds:>10.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--size", type=int, default=160, help="Y and X size of the images")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    shape_3d = (args.batch_size, 1, 1, args.size, args.size)
    batch = {key: torch.rand(shape_3d) for key in KEYS}
    rows = [
        ("MONAI per sample (loop over batch)", best_time(per_sample_chain(), batch, args.repeats)),
        ("viscy_transforms wrappers, per-channel keys", best_time(batched_chain(), batch, args.repeats)),
        ("viscy_transforms Batched*, stacked (B,2,...)", best_time(batched_stacked_chain(), batch, args.repeats)),
    ]
    print_rows(f"3-D: batch {shape_3d[0]} x {len(KEYS)} channels x {shape_3d[2:]}, CPU, {threads} threads", rows)
    shape_2d = (args.batch_size, 1, args.size, args.size)
    batch_2d = {key: torch.rand(shape_2d) for key in KEYS}
    rows_2d = [
        ("MONAI per sample (loop over batch)", best_time(per_sample_chain(AFFINE_2D), batch_2d, args.repeats)),
        (
            "viscy_transforms Batched*, stacked (B,2,Y,X)",
            best_time(batched_stacked_chain(BATCHED_AFFINE_2D), batch_2d, args.repeats),
        ),
    ]
    print_rows(f"2-D: batch {shape_2d[0]} x {len(KEYS)} channels x {shape_2d[2:]}, CPU, {threads} threads", rows_2d)


if __name__ == "__main__":
    main()
