import pytest
import torch.distributed as dist

from viscy_data.distributed import ShardedDistributedSampler, get_rank, get_world_size, is_distributed


def _ranks(n, replicas, **kwargs):
    return [list(ShardedDistributedSampler(range(n), num_replicas=replicas, rank=r, **kwargs)) for r in range(replicas)]


def test_shuffled_ranks_get_contiguous_blocks():
    ranks = _ranks(10, 3, shuffle=True, seed=0)
    assert [sorted(r) for r in ranks] == [[0, 1, 2, 3], [4, 5, 6, 7], [6, 7, 8, 9]]


def test_shuffled_shards_are_disjoint_when_evenly_divisible():
    ranks = _ranks(12, 3, shuffle=True, seed=1)
    assert set().union(*map(set, ranks)) == set(range(12))
    assert sum(len(r) for r in ranks) == 12


def test_unshuffled_interleaves_and_pads_from_start():
    assert _ranks(10, 3, shuffle=False) == [[0, 3, 6, 9], [1, 4, 7, 0], [2, 5, 8, 1]]


def test_drop_last_truncates():
    ranks = _ranks(10, 3, shuffle=False, drop_last=True)
    assert ranks == [[0, 3, 6], [1, 4, 7], [2, 5, 8]]


def test_epoch_changes_order_within_block_deterministically():
    sampler = ShardedDistributedSampler(range(40), num_replicas=2, rank=0, shuffle=True, seed=3)
    first = list(sampler)
    assert list(sampler) == first
    sampler.set_epoch(1)
    second = list(sampler)
    assert second != first and sorted(second) == sorted(first) == list(range(20))


@pytest.mark.parametrize("n", [5, 7])
def test_every_rank_has_num_samples(n):
    for rank in _ranks(n, 4, shuffle=True):
        assert len(rank) == -(-n // 4)


def test_distributed_state_outside_a_process_group():
    assert not dist.is_initialized()
    assert (is_distributed(), get_rank(), get_world_size()) == (False, 0, 1)


def test_distributed_state_inside_a_single_rank_gloo_group(tmp_path):
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        assert (is_distributed(), get_rank(), get_world_size()) == (True, 0, 1)
    finally:
        dist.destroy_process_group()
    assert not is_distributed()
