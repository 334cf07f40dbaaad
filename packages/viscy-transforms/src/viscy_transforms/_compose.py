"""MONAI's ``Compose`` that seeds every random transform, VisCy's (MONAI-free) ones included."""

import warnings
from typing import Any

import monai.transforms as mt
import numpy as np

from viscy_transforms._base import MAX_SEED, Randomizable

__all__ = ["Compose"]


class Compose(mt.Compose):
    """``monai.transforms.Compose`` whose ``set_random_state`` and ``randomize`` reach every :class:`Randomizable`.

    MONAI's ``Compose`` only reseeds subclasses of ``monai.transforms.Randomizable``; this one reseeds every
    transform implementing the protocol (``set_random_state`` and ``randomize``): MONAI's and VisCy's
    ``Batched*`` transforms, which do not import MONAI. Seeds are drawn from ``self.R`` in the same order as
    MONAI's, so pipelines of MONAI transforms draw as before.
    """

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None) -> "Compose":
        """Reseed this pipeline, then every random transform in it from the pipeline's generator."""
        mt.Randomizable.set_random_state(self, seed=seed, state=state)
        for transform in self.transforms:
            if isinstance(transform, Randomizable):
                transform.set_random_state(seed=int(self.R.randint(MAX_SEED, dtype="uint32")))
        return self

    def randomize(self, data: Any | None = None) -> None:
        """Draw the parameters of every random transform that can draw them from ``data`` alone."""
        for transform in self.transforms:
            if isinstance(transform, Randomizable):
                try:
                    transform.randomize(data)
                except TypeError as error:
                    name = type(transform).__name__
                    warnings.warn(
                        f"Transform '{name}' in Compose not randomized\n{name}.{error}.", RuntimeWarning, stacklevel=2
                    )
