from typing import get_args

from viscy_data import _typing


def test_all_lists_the_seventeen_public_names():
    assert len(_typing.__all__) == 17
    assert all(hasattr(_typing, name) for name in _typing.__all__)


def test_index_columns_order():
    assert _typing.INDEX_COLUMNS == ["fov_name", "track_id", "t", "id", "parent_track_id", "parent_id", "z", "y", "x"]


def test_label_maps_are_fixed_integers():
    assert _typing.LABEL_INFECTION_STATE == {"uninfected": 0, "infected": 1, "unknown": -1}
    assert _typing.LABEL_CELL_DIVISION_STATE == {"interphase": 0, "mitosis": 1, "unknown": -1}
    assert _typing.LABEL_CELL_REMODELING_STATE == {"no_remodel": 0, "remodeling": 1, "unknown": -1}
    assert list(_typing.LABEL_CELL_CYCLE_STATE.values()) == [0, 1, 2, 3, 4, 5, 6, -1]
    assert list(_typing.LABEL_CELL_CYCLE_STATE)[:3] == ["G1", "S", "G2"]


def test_hcs_stack_index_is_a_named_tuple():
    index = _typing.HCSStackIndex("A/1/0/0", 2, 3)
    assert index.image == "A/1/0/0" and index.time == 2 and index.z == 3
    assert tuple(index) == ("A/1/0/0", 2, 3)


def test_annotation_columns_literal():
    assert set(get_args(_typing.AnnotationColumns)) == {
        "infection_state",
        "cell_division_state",
        "cell_remodeling_state",
        "cell_cycle_state",
    }


def test_optional_typed_dict_keys():
    assert _typing.TripletSample.__required_keys__ == {"anchor"}
    assert _typing.ChannelMap.__required_keys__ == {"source"}
    assert _typing.Sample.__required_keys__ == set()
