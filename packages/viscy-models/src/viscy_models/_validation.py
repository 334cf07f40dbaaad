"""Input-shape checks run before any convolution, with errors that name the expected shape."""

from collections.abc import Mapping, Sequence

from torch import Tensor


def _describe_axis(axis: str, allowed: tuple[int, ...] | None) -> str:
    if allowed is None:
        return axis
    if len(allowed) == 1:
        return f"{axis}={allowed[0]}"
    return f"{axis} in {{{', '.join(map(str, allowed))}}}"


def check_input_shape(
    x: Tensor,
    model_name: str,
    axes: Sequence[str],
    fixed: Mapping[str, int | tuple[int, ...]] | None = None,
    multiple_of: Mapping[str, int] | None = None,
    minimum: Mapping[str, int] | None = None,
) -> None:
    """Raise a ``ValueError`` naming the expected shape if ``x`` does not match it.

    Parameters
    ----------
    x : Tensor
        The input tensor.
    model_name : str
        Name of the network, used in the message.
    axes : Sequence[str]
        Axis names, e.g. ``("B", "C", "D", "H", "W")``; the tensor must have this many dimensions.
    fixed : Mapping[str, int | tuple[int, ...]], optional
        Axes whose size must equal the given value (or one of the given values).
    multiple_of : Mapping[str, int], optional
        Axes whose size must be a positive multiple of the given value.
    minimum : Mapping[str, int], optional
        Axes whose size must be at least the given value.
    """
    fixed = {a: (v,) if isinstance(v, int) else tuple(v) for a, v in (fixed or {}).items()}
    multiple_of = dict(multiple_of or {})
    minimum = dict(minimum or {})
    shape = tuple(x.shape)
    ok = len(shape) == len(axes)
    if ok:
        sizes = dict(zip(axes, shape, strict=True))
        ok = (
            all(sizes[a] in v for a, v in fixed.items())
            and all(sizes[a] > 0 and sizes[a] % v == 0 for a, v in multiple_of.items())
            and all(sizes[a] >= v for a, v in minimum.items())
        )
    if ok:
        return
    expected = "(" + ", ".join(_describe_axis(a, fixed.get(a)) for a in axes) + ")"
    conditions = [f"{a} a multiple of {v}" for a, v in multiple_of.items()]
    conditions += [f"{a} >= {v}" for a, v in minimum.items()]
    if conditions:
        expected += " with " + ", ".join(conditions)
    raise ValueError(f"{model_name}: expected input of shape {expected}, got {shape}")
