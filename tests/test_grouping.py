"""Neighbour grouping (docs/design/spec.md#grouping)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree

from ptychopinn.data.grouping import GroupingError, group_positions


@pytest.fixture
def positions(rng):
    return rng.uniform(0, 100, (60, 2))


def test_gridsize_one_is_every_position_with_zero_offsets(positions):
    groups = group_positions(positions, gridsize=1)
    np.testing.assert_array_equal(groups.indices[:, 0], np.arange(60))
    assert groups.offsets_xy.shape == (60, 1, 2) and not groups.offsets_xy.any()
    np.testing.assert_allclose(groups.centers_xy, positions)


def test_gridsize_one_subset_and_too_many(positions):
    groups = group_positions(positions, gridsize=1, n_groups=10, seed=3)
    assert groups.n_groups == 10 and len(set(groups.indices[:, 0])) == 10
    with pytest.raises(GroupingError, match="at most 60"):
        group_positions(positions, gridsize=1, n_groups=61)


@pytest.mark.parametrize("k", [4, 6])
def test_members_are_among_k_nearest_excluding_seed(positions, k):
    groups = group_positions(positions, gridsize=2, neighbor_count=k, seed=0)
    _, nearest = cKDTree(positions).query(positions, k=k + 1)
    assert groups.n_groups == 60 and groups.channels == 4
    for seed, members in enumerate(groups.indices):
        assert len(set(members)) == 4
        assert set(members) <= set(nearest[seed, 1:])
        assert seed not in members


def test_grouping_is_deterministic_for_a_seed(positions):
    a = group_positions(positions, gridsize=2, seed=5)
    b = group_positions(positions, gridsize=2, seed=5)
    c = group_positions(positions, gridsize=2, neighbor_count=7, seed=6)
    np.testing.assert_array_equal(a.indices, b.indices)
    assert not np.array_equal(a.indices, c.indices)


def test_offsets_are_member_minus_centre_zero_mean(positions):
    groups = group_positions(positions, gridsize=2, neighbor_count=6, seed=1)
    np.testing.assert_allclose(groups.offsets_xy.mean(axis=1), 0, atol=1e-12)
    members = positions[groups.indices]
    np.testing.assert_allclose(groups.offsets_xy, members - groups.centers_xy[:, None], atol=1e-12)
    # [x, y] order: a member to the right of the centre has a positive x offset
    g = 0
    right = np.argmax(members[g, :, 0])
    assert groups.offsets_xy[g, right, 0] > 0


def test_oversampling_draws_distinct_combinations(positions):
    groups = group_positions(positions, gridsize=2, neighbor_count=6, n_groups=200, seed=2)
    assert groups.n_groups == 200
    as_sets = {tuple(sorted(g)) for g in groups.indices.tolist()}
    assert len(as_sets) == 200


def test_too_many_groups_says_how_many_are_possible():
    grid = np.stack(np.meshgrid(np.arange(4.0), np.arange(4.0)), -1).reshape(-1, 2) * 10
    with pytest.raises(GroupingError, match=r"only \d+ distinct groups are possible"):
        group_positions(grid, gridsize=2, neighbor_count=4, n_groups=10_000)


def test_too_few_positions_and_small_k_are_errors():
    with pytest.raises(GroupingError, match="needs at least 5"):
        group_positions(np.zeros((4, 2)) + np.arange(4)[:, None], gridsize=2, neighbor_count=4)
    with pytest.raises(GroupingError, match="at least C=9"):
        group_positions(np.arange(40.0).reshape(20, 2), gridsize=3, neighbor_count=4)


def test_gridsize_three_has_nine_channels(positions):
    groups = group_positions(positions, gridsize=3, neighbor_count=12, n_groups=15)
    assert groups.indices.shape == (15, 9) and groups.offsets_xy.shape == (15, 9, 2)
