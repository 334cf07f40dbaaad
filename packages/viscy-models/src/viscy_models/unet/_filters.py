"""Filter schedule shared by the classic 2D and 2.5D U-Nets."""

from collections.abc import Sequence


def unet_filters(num_blocks: int, num_filters: Sequence[int], model_name: str) -> list[int]:
    """Channels per level: ``num_filters`` if given (num_blocks + 1 entries), else 16 * 2**i."""
    if not num_filters:
        return [16 * 2**i for i in range(num_blocks + 1)]
    if len(num_filters) != num_blocks + 1:
        raise ValueError(
            f"{model_name}: num_filters needs num_blocks + 1 = {num_blocks + 1} entries, got {len(num_filters)}"
        )
    return list(num_filters)
