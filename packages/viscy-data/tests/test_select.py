import pytest
from iohub.ngff import open_ome_zarr

from viscy_data.select import SelectWell, _filter_fovs, _filter_wells
from viscy_data.testing import write_hcs_plate

POSITIONS = ["A/1/0", "A/1/1", "A/2/0", "B/1/0", "B/1/1"]


class _Selector(SelectWell):
    def __init__(self, include_wells=None, exclude_fovs=None):
        self._include_wells = include_wells
        self._exclude_fovs = exclude_fovs


@pytest.fixture(params=["0.4", "0.5"])
def plate(tmp_path, request):
    write_hcs_plate(tmp_path / "plate.zarr", positions=POSITIONS, shape=(1, 1, 4, 4), version=request.param)
    with open_ome_zarr(tmp_path / "plate.zarr", mode="r", layout="hcs") as opened:
        yield opened


def _names(positions):
    return sorted(p.zgroup.name.strip("/") for p in positions)


def test_filter_wells_yields_included_wells_only(plate):
    assert sorted(w.zgroup.name.strip("/") for w in _filter_wells(plate, ["A/1", "B/1"])) == ["A/1", "B/1"]
    assert len(list(_filter_wells(plate, None))) == 3


def test_filter_fovs_excludes_by_full_name(plate):
    well = next(_filter_wells(plate, ["A/1"]))
    assert _names(_filter_fovs(well, ["A/1/0"])) == ["A/1/1"]
    assert _names(_filter_fovs(well, None)) == ["A/1/0", "A/1/1"]


def test_select_well_applies_both_filters(plate):
    selected = _Selector(include_wells=["A/1", "B/1"], exclude_fovs=["B/1/1"])._filter_fit_fovs(plate)
    assert _names(selected) == ["A/1/0", "A/1/1", "B/1/0"]
    assert _names(_Selector()._filter_fit_fovs(plate)) == POSITIONS


def test_select_well_needs_two_fovs(plate):
    with pytest.raises(ValueError, match="At least 2 FOVs are required"):
        _Selector(include_wells=["A/2"])._filter_fit_fovs(plate)


def test_select_well_rejects_unknown_wells(plate):
    with pytest.raises(ValueError, match=r"Wells \['C/9'\] are not in plate"):
        _Selector(include_wells=["A/1", "C/9"])._filter_fit_fovs(plate)
