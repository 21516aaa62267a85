"""Labelled/unlabelled bookkeeping, checked with hypothesis."""
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from isal_mmdet.al.state import LabelState, initial_split

ids_st = st.one_of(st.sets(st.integers(0, 10_000), min_size=1, max_size=60),
                   st.sets(st.text('abc_0123', min_size=1, max_size=8), min_size=1, max_size=60))


@settings(max_examples=60, deadline=None)
@given(ids=ids_st, data=st.data())
def test_rounds_keep_sets_disjoint_and_grow_by_budget(ids, data, tmp_path_factory):
    ids = list(ids)
    size = data.draw(st.integers(1, len(ids)))
    seed = data.draw(st.integers(0, 99))
    first = initial_split(ids, size, seed)
    assert first == initial_split(list(reversed(ids)), size, seed)  # order-independent
    state = LabelState(ids, first)
    path = str(tmp_path_factory.mktemp('state') / 'labeled.json')
    while state.unlabelled:
        budget = data.draw(st.integers(1, 10))
        pool = state.unlabelled
        take = data.draw(st.permutations(pool))[:budget]
        before = len(state.labelled)
        state = state.add(take)
        assert len(state.labelled) == before + min(budget, len(pool))
        assert not set(state.labelled) & set(state.unlabelled)
        assert set(state.labelled) | set(state.unlabelled) == set(ids)
        assert len(set(state.labelled)) == len(state.labelled)
        state.save(path)
        again = LabelState.load(path, ids)
        assert again.labelled == state.labelled
        assert json.load(open(path)) == state.labelled


def test_bad_input_errors(tmp_path):
    with pytest.raises(ValueError, match='initial_size=5 is larger than the pool'):
        initial_split([1, 2, 3], 5, 0)
    with pytest.raises(ValueError, match='initial_size must be > 0'):
        initial_split([1, 2, 3], 0, 0)
    with pytest.raises(ValueError, match='not in the dataset'):
        LabelState([1, 2, 3], [4])
    with pytest.raises(ValueError, match='not in the unlabelled pool'):
        LabelState([1, 2, 3], [1]).add([1])
    bad = tmp_path / 'ids.json'
    bad.write_text('{"a": 1}')
    with pytest.raises(ValueError, match='ids.json: expected a JSON list'):
        LabelState.load(str(bad), [1])
    bad.write_text('[1, 2')
    with pytest.raises(ValueError, match='ids.json: not valid JSON'):
        LabelState.load(str(bad), [1])
    bad.write_text('[1, 2, 1]')
    with pytest.raises(ValueError, match=r'ids.json: entry \[2\] 1 is listed twice'):
        LabelState.load(str(bad), [1, 2])


def test_initial_split_is_seeded():
    ids = [f'img_{i}' for i in range(100)]
    assert initial_split(ids, 10, 1) == initial_split(ids, 10, 1)
    assert initial_split(ids, 10, 1) != initial_split(ids, 10, 2)
