"""The 12-bit task: regenerated labels, icosahedral structure, splits."""

import hashlib
import itertools

import numpy as np
import pytest

from ibtools import data


def test_labels_match_published_file(task):
    # count and both published checksums of var_u.mat's label vector
    assert task.X.shape == (4096, 12) and task.y.shape == (4096,)
    assert int(task.y.sum()) == 2118
    assert hashlib.sha256(np.packbits(task.y.astype(np.uint8)).tobytes()).hexdigest() == data.EXPECTED_PACKED_SHA256
    assert (
        hashlib.sha256(task.y.astype(np.uint8).tobytes()).hexdigest()
        == "77732f16f85e91b49d3997196b56163b3bd362d8cf631468a8de3f986e88359f"
    )
    assert task.label_entropy() == pytest.approx(0.99916, abs=1e-5)


def test_patterns_are_binary_counting_order(task):
    powers = 2 ** np.arange(11, -1, -1)
    assert np.array_equal(task.X.astype(int) @ powers, np.arange(4096))
    assert not task.X.flags.writeable and not task.y.flags.writeable


def test_label_mismatch_is_an_error(monkeypatch):
    flipped = data._rule_labels(data._patterns())
    flipped[17] ^= 1
    with pytest.raises(RuntimeError, match="do not match the published"):
        data._check_labels(flipped)


def test_popcount_structure(task):
    n = task.X.sum(1)
    for k, ones in {5: 60, 6: 532, 7: 732}.items():
        assert int(task.y[n == k].sum()) == ones
    assert task.y[n <= 4].sum() == 0 and task.y[n >= 8].all()


def test_geometry_rule_gives_the_same_labels(task):
    assert np.array_equal(data.dipole_rule_labels(task.X.astype(np.uint8)), task.y)
    v = data.vertex_positions()
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0)
    for i, j in data.pair_classes()["antipode"]:
        assert np.allclose(v[i], -v[j])


def _automorphisms():
    """All permutations of the 12 bits that map neighbours to neighbours (backtracking)."""
    adj = {i: set(n) for i, n in data.NEIGHBOURS.items()}
    found = []

    def extend(mapping):
        i = len(mapping)
        if i == 12:
            found.append(tuple(mapping))
            return
        for cand in range(12):
            if cand in mapping:
                continue
            if all((cand in adj[mapping[j]]) == (j in adj[i]) for j in range(i)):
                extend(mapping + [cand])

    extend([])
    return found


def test_labels_invariant_under_the_120_icosahedral_symmetries(task):
    autos = _automorphisms()
    assert len(autos) == 120
    codes = task.X.astype(int) @ (2 ** np.arange(11, -1, -1))
    for perm in autos:
        permuted = task.X[:, list(perm)]
        assert np.array_equal(task.y[permuted.astype(int) @ (2 ** np.arange(11, -1, -1))], task.y[codes])


def test_unshuffled_split_is_the_papers(task):
    s = data.make_split(task, "unshuffled")
    assert (len(s.train), len(s.test)) == (3277, 819)
    assert np.array_equal(s.train, np.arange(3277))
    bal = s.class_balance(task.y)
    assert bal["train"] == pytest.approx(0.437, abs=1e-3) and bal["test"] == pytest.approx(0.836, abs=1e-3)


def test_stratified_split_is_balanced_and_seeded(task):
    a = data.make_split(task, "stratified", seed=3)
    b = data.make_split(task, "stratified", seed=3)
    c = data.make_split(task, "stratified", seed=4)
    assert np.array_equal(a.train, b.train) and not np.array_equal(a.train, c.train)
    assert (len(a.train), len(a.test)) == (3277, 819)
    assert np.intersect1d(a.train, a.test).size == 0 and np.union1d(a.train, a.test).size == 4096
    for part in (a.train, a.test):  # within one pattern of the overall share of each class
        ones = task.y[part].sum()
        assert abs(ones - 2118 / 4096 * len(part)) <= 1


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.2, 1.5, 0.0001])
def test_bad_train_fraction(fraction):
    with pytest.raises(ValueError, match="train_fraction"):
        data.unshuffled_split(4096, fraction)


def test_unknown_split_kind(task):
    with pytest.raises(ValueError, match="unknown split kind 'random'.*unshuffled"):
        data.make_split(task, "random")


def test_pair_classes_partition_all_pairs():
    classes = data.pair_classes()
    pairs = set(itertools.chain.from_iterable(classes.values()))
    assert pairs == set(itertools.combinations(range(12), 2))
