"""Shared plumbing of the batched transforms: MONAI's transform protocol, input validation, keys and randomness.

Protocol
--------
:class:`Transform`, :class:`MapTransform` and :class:`Randomizable` implement MONAI's transform protocol
(``keys``/``allow_missing_keys``/``key_iterator``, ``R``/``set_random_state``/``randomize``, with MONAI's
semantics and seeding) without importing MONAI, so that a transform that does not wrap MONAI imports only
torch and numpy. They are abstract base classes that recognise MONAI's own classes structurally
(``issubclass(monai.transforms.RandFlipd, MapTransform)`` holds), so they can annotate lists of either kind
of transform; ``viscy_transforms.Compose`` seeds both kinds.

Randomness
----------
Every random transform of this package is a :class:`Randomizable`: its parameters are drawn from ``self.R``
(a ``numpy.random.RandomState``), which ``set_random_state(seed)`` (or ``viscy_transforms.Compose.set_random_state``)
reseeds. At construction ``self.R`` is seeded from torch's global generator, so ``lightning.seed_everything`` /
``torch.manual_seed`` make a pipeline reproducible.
Per-sample parameters are small ``(B,)`` arrays drawn on the host and sent to the data's device; large random
fields (noise volumes, displacement fields) are drawn directly on the data's device with a
``torch.Generator`` seeded from ``self.R``, so image data never leaves its device.
"""

from abc import ABC, abstractmethod
from collections.abc import Hashable, Iterator, Mapping, MutableMapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "MAX_SEED",
    "MapTransform",
    "Randomizable",
    "Transform",
    "BATCHED_NDIM",
    "BATCHED_RANKS",
    "BatchedRandDict",
    "BatchedRandomTransform",
    "as_pair",
    "as_plain_tensor",
    "check_batched",
    "device_generator",
    "fall_back_size",
    "draw_coins",
    "is_batched_input",
    "not_drawn_message",
    "output_dtype",
    "present_batched_keys",
    "seed_from_global_rng",
    "to_param",
    "torch_dtype",
]

BATCHED_NDIM = 5
# ranks a ``Batched*`` transform accepts: 2-D ``(B, C, Y, X)`` and 3-D ``(B, C, Z, Y, X)`` batches
BATCHED_RANKS = (4, 5)
_MAX_SEED = 2**31 - 1
# MONAI's bound of ``set_random_state`` seeds (``monai.utils.MAX_SEED``)
MAX_SEED = np.iinfo(np.uint32).max + 1
_LAYOUTS = {4: "(B, C, Y, X)", 5: "(B, C, Z, Y, X)"}


def _defines(cls: type, *names: str) -> bool:
    """Whether every name in ``names`` is defined (not ``None``) by ``cls`` or one of its bases."""
    return all(any(base.__dict__.get(name) is not None for base in cls.__mro__) for name in names)


class Transform(ABC):
    """A callable transform (MONAI's ``Transform`` protocol: ``__call__(data)``, ``backend``)."""

    backend: list = []

    @abstractmethod
    def __call__(self, data: Any) -> Any:
        """Transform ``data``."""

    @classmethod
    def __subclasshook__(cls, subclass: type) -> bool:
        if cls is Transform and _defines(subclass, "__call__", "backend"):
            return True
        return NotImplemented


class MapTransform(Transform):
    """A dictionary transform applied to ``keys`` of its input (MONAI's ``MapTransform`` protocol).

    Parameters
    ----------
    keys : Hashable | Sequence[Hashable]
        Keys of the entries to transform.
    allow_missing_keys : bool
        Skip keys absent from the input instead of raising ``KeyError``.
    """

    def __init__(self, keys: Hashable | Sequence[Hashable], allow_missing_keys: bool = False) -> None:
        self.keys: tuple[Hashable, ...] = (
            tuple(keys) if isinstance(keys, Sequence) and not isinstance(keys, str) else (keys,)
        )
        self.allow_missing_keys = allow_missing_keys
        if not self.keys:
            raise ValueError(f"{type(self).__name__}: keys must be non empty")
        for key in self.keys:
            if not isinstance(key, Hashable):
                raise TypeError(f"{type(self).__name__}: keys must be hashable, got {key!r} ({type(key).__name__})")

    def key_iterator(self, data: Mapping[Hashable, Any], *extra_iterables: Sequence | None) -> Iterator:
        """Yield the keys present in ``data`` (with the matching items of ``extra_iterables``, if given).

        Raises
        ------
        KeyError
            If a key is missing and ``allow_missing_keys`` is False.
        """
        extras = extra_iterables or [[None] * len(self.keys)]
        for key, *items in zip(self.keys, *extras, strict=False):
            if key in data:
                yield (key, *items) if extra_iterables else key
            elif not self.allow_missing_keys:
                raise KeyError(
                    f"Key `{key}` of transform `{type(self).__name__}` was missing in the data "
                    "and allow_missing_keys==False."
                )

    def first_key(self, data: Mapping[Hashable, Any]) -> Hashable | list:
        """The first key of ``keys`` present in ``data`` (``[]`` if none)."""
        return next(self.key_iterator(data), [])

    @classmethod
    def __subclasshook__(cls, subclass: type) -> bool:
        if cls is MapTransform and _defines(subclass, "__call__", "key_iterator"):
            return True
        return NotImplemented


class Randomizable(ABC):  # noqa: B024 (no abstract method: randomize has a default, as in MONAI)
    """A transform with random parameters drawn from ``self.R`` (MONAI's ``Randomizable`` protocol)."""

    R: np.random.RandomState = np.random.RandomState()

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None):
        """Reseed ``self.R`` from ``seed`` (modulo ``MAX_SEED``) or replace it by ``state``; return ``self``.

        Without arguments ``self.R`` is a fresh, unseeded ``RandomState`` (as in MONAI).
        """
        if seed is not None:
            value = seed if isinstance(seed, int | np.integer) else id(seed)
            self.R = np.random.RandomState(int(np.int64(value) % MAX_SEED))
        elif state is not None:
            if not isinstance(state, np.random.RandomState):
                raise TypeError(f"state must be a numpy.random.RandomState, got {type(state).__name__}")
            self.R = state
        else:
            self.R = np.random.RandomState()
        return self

    def randomize(self, data: Any) -> None:
        """Draw the random parameters of the next call."""
        raise NotImplementedError(f"{type(self).__name__} does not implement randomize")

    @classmethod
    def __subclasshook__(cls, subclass: type) -> bool:
        if cls is Randomizable and _defines(subclass, "set_random_state", "randomize"):
            return True
        return NotImplemented


def fall_back_size(size: int | Sequence[int] | None, default: Sequence[int]) -> tuple[int, ...]:
    """``size`` per spatial dim, where a missing, ``None`` or non-positive entry takes ``default``'s.

    A number applies to every dim (MONAI's ``fall_back_tuple``).
    """
    sizes = [size] * len(default) if size is None or isinstance(size, int | np.integer) else list(size)
    if len(sizes) != len(default):
        raise ValueError(f"size {size!r} must have {len(default)} entries (one per spatial dim)")
    return tuple(int(d) if s is None or s <= 0 else int(s) for s, d in zip(sizes, default, strict=False))


def output_dtype(dtype: Any, img: Tensor) -> torch.dtype:
    """The torch dtype of a transform's output: ``dtype``, or ``img``'s floating dtype (float32) if None."""
    if dtype is None:
        return img.dtype if img.is_floating_point() else torch.float32
    return torch_dtype(dtype)


def torch_dtype(dtype: Any) -> torch.dtype:
    """The torch dtype equivalent to ``dtype`` (a torch dtype, numpy dtype, type or name)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    return torch.from_numpy(np.empty(0, dtype=dtype)).dtype


def seed_from_global_rng(transform: Randomizable) -> None:
    """Seed ``transform.R`` from torch's global generator (so ``torch.manual_seed`` controls it)."""
    transform.set_random_state(seed=int(torch.randint(0, _MAX_SEED, (1,)).item()))


def draw_coins(rng: np.random.RandomState, prob: float, batch_size: int) -> np.ndarray:
    """Draw one Bernoulli(``prob``) decision per sample, shape ``(batch_size,)``."""
    return rng.random_sample(batch_size) < prob


def device_generator(rng: np.random.RandomState, device: torch.device) -> torch.Generator:
    """Create a torch generator on ``device`` seeded from ``rng`` (deterministic under ``set_random_state``)."""
    generator = torch.Generator(device=device)
    generator.manual_seed(int(rng.randint(0, _MAX_SEED)))
    return generator


def to_param(values: np.ndarray, like: Tensor) -> Tensor:
    """Send host-side per-sample parameters to the device of ``like`` (float parameters take its float dtype)."""
    dtype = like.dtype if like.is_floating_point() else torch.float32
    if values.dtype == np.bool_:
        dtype = torch.bool
    return torch.as_tensor(values, dtype=dtype, device=like.device)


def as_pair(value: float | Sequence[float], name: str, symmetric: bool = False) -> tuple[float, float]:
    """Turn ``value`` into a ``(low, high)`` range.

    A number ``v`` becomes ``(-|v|, |v|)`` if ``symmetric`` else ``(v, v)``; a 2-sequence is sorted.
    """
    if isinstance(value, int | float):
        return (-abs(float(value)), abs(float(value))) if symmetric else (float(value), float(value))
    values = [float(v) for v in value]
    if len(values) != 2:
        raise ValueError(f"{name} must be a number or a (min, max) pair, got {value!r}")
    return min(values), max(values)


def not_drawn_message(transform: Randomizable) -> str:
    """Error text for ``transform(img, randomize=False)`` called before any parameters were drawn."""
    return (
        f"{type(transform).__name__}: no random parameters drawn yet; call it with randomize=True first "
        "(randomize=False re-applies the last draw)"
    )


def as_plain_tensor(tensor: Tensor) -> Tensor:
    """Return ``tensor`` as a plain ``torch.Tensor`` (a subclass such as MONAI's ``MetaTensor`` is unwrapped
    without copying)."""
    return tensor if type(tensor) is Tensor else tensor.as_subclass(Tensor)


def check_batched(key: Hashable, value: object, ndim: int | Sequence[int] = BATCHED_RANKS) -> Tensor:
    """Check that ``value`` is a tensor with one of the expected ranks and return it as a plain tensor.

    Raises
    ------
    TypeError
        If ``value`` is not a ``torch.Tensor``.
    ValueError
        If its rank is not one of ``ndim``.
    """
    ranks = (ndim,) if isinstance(ndim, int) else tuple(ndim)
    if not isinstance(value, Tensor):
        raise TypeError(f"key '{key}': expected a batched torch.Tensor (B, C, [Z,] Y, X), got {type(value).__name__}")
    if value.ndim not in ranks:
        expected = " or ".join(f"{r}-D {_LAYOUTS.get(r, '(B, C, *spatial)')}" for r in ranks)
        raise ValueError(f"key '{key}': expected a {expected} batched tensor, got shape {tuple(value.shape)}")
    return as_plain_tensor(value)


def present_batched_keys(
    transform: MapTransform, data: MutableMapping, ndim: int | Sequence[int] = BATCHED_RANKS
) -> list[Hashable]:
    """Validate and return the keys of ``transform`` present in ``data`` (missing keys raise unless allowed).

    All present entries must be tensors of the given rank(s) with the same batch size. ``data`` is the
    transform's own shallow copy of its input: ``MetaTensor`` entries are replaced by plain tensors, so that
    batched transforms return plain ``torch.Tensor``.
    """
    keys = list(transform.key_iterator(data))
    for key in keys:
        data[key] = check_batched(key, data[key], ndim)
    batch_sizes = {key: len(data[key]) for key in keys}
    if len(set(batch_sizes.values())) > 1:
        raise ValueError(f"{type(transform).__name__}: keys have different batch sizes {batch_sizes}")
    return keys


def is_batched_input(transform: MapTransform, data: Mapping) -> bool:
    """Tell whether the entries of ``transform.keys`` in ``data`` are batched ``(B, C, Z, Y, X)`` tensors.

    Returns ``True`` when every present entry is a 5-D tensor and ``False`` when none is (per-sample MONAI
    input such as ``(C, Z, Y, X)``). A mix of both raises ``ValueError``.
    """
    ranks = {key: getattr(data[key], "ndim", None) for key in transform.keys if key in data}
    batched = {key for key, rank in ranks.items() if rank == BATCHED_NDIM}
    if batched and len(batched) != len(ranks):
        shapes = {key: tuple(getattr(data[key], "shape", ())) for key in ranks}
        raise ValueError(
            f"{type(transform).__name__}: cannot mix batched (B, C, Z, Y, X) and per-sample inputs, got shapes {shapes}"
        )
    return bool(batched)


class BatchedRandomTransform(Randomizable):
    """Base of the batched array transforms: a per-sample coin plus parameters drawn by ``randomize(img)``.

    Subclasses implement ``randomize(img)`` (store per-sample parameters for ``img.shape[0]`` samples) and
    ``apply(img)``; ``__call__(img, randomize=True)`` validates ``img`` (2-D ``(B, C, Y, X)`` or 3-D
    ``(B, C, Z, Y, X)`` by default, see ``ndim``) then applies.
    """

    ndim: tuple[int, ...] = BATCHED_RANKS
    # True when channels are transformed independently with the same per-sample parameters, so that
    # dictionary wrappers may process same-shaped keys in one pass (concatenated along channels)
    channel_independent: bool = False

    def __init__(self, prob: float) -> None:
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"prob must be in [0, 1], got {prob}")
        self.prob = prob
        self._batch_size: int | None = None
        seed_from_global_rng(self)

    def draw_selected(self, batch_size: int) -> np.ndarray:
        """Draw and remember which of ``batch_size`` samples are transformed."""
        self._batch_size = batch_size
        return draw_coins(self.R, self.prob, batch_size)

    def apply(self, img: Tensor) -> Tensor:
        """Apply the current parameters to ``img``."""
        raise NotImplementedError

    def __call__(self, img: Tensor, randomize: bool = True) -> Tensor:
        """Transform ``img`` ``(B, C, [Z,] Y, X)``, drawing new per-sample parameters if ``randomize``.

        ``randomize=False`` re-applies the parameters of the last draw (e.g. to a second tensor of the batch).
        """
        img = check_batched("img", img, self.ndim)
        if randomize:
            self.randomize(img)
        if self._batch_size is None:
            raise RuntimeError(not_drawn_message(self))
        if self._batch_size != img.shape[0]:
            raise ValueError(
                f"{type(self).__name__}: parameters were drawn for {self._batch_size} samples, "
                f"got a batch of shape {tuple(img.shape)}"
            )
        return self.apply(img)


class BatchedRandDict(MapTransform, Randomizable):
    """Dictionary wrapper of a :class:`BatchedRandomTransform`.

    Parameters are drawn once per call from the first present key (per sample), then applied to every key,
    so the keys of one sample share the same random draw (as MONAI dictionary transforms do).
    """

    def __init__(self, keys: Sequence[str] | str, transform: BatchedRandomTransform, allow_missing_keys: bool):
        MapTransform.__init__(self, keys, allow_missing_keys)
        self.transform = transform
        seed_from_global_rng(self)

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None):
        """Reseed this transform and the wrapped array transform."""
        super().set_random_state(seed, state)
        self.transform.set_random_state(seed, state)
        return self

    def randomize(self, data: Tensor) -> None:
        """Draw per-sample parameters for the batch ``data``."""
        self.transform.randomize(data)

    def __call__(self, data: Mapping[Hashable, Tensor]) -> dict[Hashable, Tensor]:
        """Transform every present key with one per-sample draw; other entries are left untouched."""
        d = dict(data)
        keys = present_batched_keys(self, d, self.transform.ndim)
        if not keys:
            return d
        self.randomize(d[keys[0]])
        if self.transform.channel_independent and len({(d[k].shape[2:], d[k].dtype) for k in keys}) == 1:
            channels = [d[key].shape[1] for key in keys]
            out = self.transform(torch.cat([d[key] for key in keys], dim=1), randomize=False)
            d.update(zip(keys, out.split(channels, dim=1), strict=True))
            return d
        for key in keys:
            d[key] = self.transform(d[key], randomize=False)
        return d
