"""Batched augmentation chain vs MONAI applied per sample, on CPU.

Chain: random affine (rotation, scale, shear) -> random Gaussian smoothing -> random Gaussian noise, every
transform with prob=1.0, on a ``(64, 2, 1, 160, 160)`` batch. The reference applies ``monai.transforms`` to each
sample (keys ``ch_0``/``ch_1`` of shape ``(1, 1, 160, 160)``). Two batched layouts are timed: viscy_transforms'
MONAI-named wrappers on per-channel keys ``(64, 1, 1, 160, 160)`` (what DynaCLR's data modules produce), and the
``Batched*`` transforms on the stacked ``(64, 2, 1, 160, 160)`` tensor.

Run: ``python benchmarks/transforms.py [--repeats N]``.
"""

import argparse
import time
from collections.abc import Callable

import monai.transforms as mt
import torch

import viscy_transforms as vt

BATCH_SHAPE = (64, 1, 1, 160, 160)
KEYS = ["ch_0", "ch_1"]
AFFINE = dict(prob=1.0, rotate_range=[3.14, 0.0, 0.0], shear_range=[0.0, 0.01, 0.01], scale_range=[0.0, 0.2, 0.2])
SMOOTH = dict(prob=1.0, sigma_x=(0.25, 0.75), sigma_y=(0.25, 0.75), sigma_z=(0.0, 0.0))
NOISE = dict(prob=1.0, mean=0.0, std=0.2)
# the same ranges in BatchedRandAffined's (kornia) semantics: scale_range holds magnification factors
BATCHED_AFFINE = dict(
    prob=1.0, rotate_range=[3.14, 0.0, 0.0], shear_range=[0.0, 0.01, 0.01], scale_range=[(1, 1), (0.8, 1.2), (0.8, 1.2)]
)


def batched_chain() -> Callable[[dict], dict]:
    """The chain of this package's transforms, applied to the whole batch."""
    return mt.Compose(
        [
            vt.RandAffined(keys=KEYS, padding_mode="zeros", **AFFINE),
            vt.RandGaussianSmoothd(keys=KEYS, **SMOOTH),
            vt.RandGaussianNoised(keys=KEYS, **NOISE),
        ]
    ).set_random_state(0)


def batched_stacked_chain() -> Callable[[dict], dict]:
    """The ``Batched*`` chain on the stacked ``(B, 2, Z, Y, X)`` tensor."""
    chain = mt.Compose(
        [
            vt.BatchedRandAffined(keys=["image"], **BATCHED_AFFINE),
            vt.BatchedRandGaussianSmoothd(keys=["image"], **SMOOTH),
            vt.BatchedRandGaussianNoised(keys=["image"], **NOISE),
        ]
    ).set_random_state(0)
    return lambda batch: chain({"image": torch.cat([batch[key] for key in KEYS], dim=1)})


def per_sample_chain() -> Callable[[dict], dict]:
    """The same chain with MONAI's transforms, applied sample by sample."""
    chain = mt.Compose(
        [
            mt.RandAffined(keys=KEYS, padding_mode="zeros", **AFFINE),
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    batch = {key: torch.rand(BATCH_SHAPE) for key in KEYS}
    per_sample = best_time(per_sample_chain(), batch, args.repeats)
    batched = best_time(batched_chain(), batch, args.repeats)
    stacked = best_time(batched_stacked_chain(), batch, args.repeats)
    print(f"batch {BATCH_SHAPE[0]} x {len(KEYS)} channels x {BATCH_SHAPE[2:]}, CPU, {torch.get_num_threads()} threads")
    rows = [
        ("MONAI per sample (loop over batch)", per_sample),
        ("viscy_transforms wrappers, per-channel keys", batched),
        ("viscy_transforms Batched*, stacked (B,2,...)", stacked),
    ]
    print(f"{'implementation':<46}{'time (s)':>10}{'speed-up':>10}")
    for name, seconds in rows:
        print(f"{name:<46}{seconds:>10.3f}{per_sample / seconds:>10.1f}")


if __name__ == "__main__":
    main()
