"""Well and FOV selection for HCS plates."""

from collections.abc import Generator

from iohub.ngff import Plate, Position
from iohub.ngff.nodes import Well

__all__ = ["SelectWell", "filter_fovs", "filter_wells"]


def filter_wells(plate: Plate, include_wells: list[str] | None) -> Generator[Well, None, None]:
    """Yield the wells of ``plate`` whose name (e.g. ``"A/1"``) is included (all if None)."""
    for well_name, well in plate.wells():
        if include_wells is None or well_name in include_wells:
            yield well


def filter_fovs(well: Well, exclude_fovs: list[str] | None) -> Generator[Position, None, None]:
    """Yield the positions of ``well`` whose name (e.g. ``"A/1/0"``) is not excluded."""
    for _, fov in well.positions():
        if exclude_fovs is None or fov.zgroup.name.strip("/") not in exclude_fovs:
            yield fov


# historical private names, used by the data modules
_filter_wells = filter_wells
_filter_fovs = filter_fovs


class SelectWell:
    """Mixin filtering a plate's FOVs by ``self._include_wells`` and ``self._exclude_fovs``."""

    _include_wells: list[str] | None
    _exclude_fovs: list[str] | None

    def _filter_fit_fovs(self, plate: Plate) -> list[Position]:
        """Return the FOVs of the included wells minus the excluded FOVs (at least 2).

        Raises
        ------
        ValueError
            If an included well is not in the plate, or fewer than 2 FOVs remain.
        """
        include_wells = getattr(self, "_include_wells", None)
        exclude_fovs = getattr(self, "_exclude_fovs", None)
        if include_wells is not None:
            well_names = {name for name, _ in plate.wells()}
            unknown = sorted(set(include_wells) - well_names)
            if unknown:
                raise ValueError(f"Wells {unknown} are not in plate '{plate.zgroup.store}': {sorted(well_names)}.")
        positions = [fov for well in _filter_wells(plate, include_wells) for fov in _filter_fovs(well, exclude_fovs)]
        if len(positions) < 2:
            raise ValueError(
                "At least 2 FOVs are required for training and validation. "
                f"Found {len(positions)} after include_wells={include_wells}, exclude_fovs={exclude_fovs}."
            )
        return positions
