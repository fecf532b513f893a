"""The seeded permutation: a bijection of [0, n) for every n, fixed by its seed, any index alone."""
import numpy as np
import pytest

from splade_exp.data.permutation import Permutation


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 8, 9, 100, 1023, 1024, 1025, 65_537])
def test_every_index_maps_to_a_distinct_index_in_range(n):
    image = Permutation(n, 0, "test")[np.arange(n)]
    assert sorted(image.tolist()) == list(range(n))


def test_fixed_by_its_seed_and_computed_index_by_index():
    n = 1000
    a = Permutation(n, 3, "order", 0)[np.arange(n)]
    assert np.array_equal(a, Permutation(n, 3, "order", 0)[np.arange(n)])
    assert [Permutation(n, 3, "order", 0)[i] for i in (999, 0, 500)] == [a[999], a[0], a[500]]
    for other in (Permutation(n, 4, "order", 0), Permutation(n, 3, "order", 1), Permutation(n, 3, "texts", 0)):
        assert (other[np.arange(n)] != a).mean() > 0.9
    assert (a != np.arange(n)).mean() > 0.9  # a shuffle, not the identity


def test_shuffles_without_an_obvious_bias():
    # where index 0 lands, over 2,000 seeds: each of 8 places about 250 times (binomial sd ~15)
    counts = np.bincount([Permutation(8, s, "u")[0] for s in range(2000)], minlength=8)
    assert counts.min() > 180 and counts.max() < 320, counts
    x = Permutation(50_000, 1, "c")[np.arange(50_000)]
    assert abs(np.corrcoef(np.arange(50_000), x)[0, 1]) < 0.02  # no drift with the index
    assert abs(np.corrcoef(x[:-1], x[1:])[0, 1]) < 0.02        # neighbours land independently


def test_out_of_range():
    with pytest.raises(IndexError):
        Permutation(5, 0)[5]
    with pytest.raises(ValueError, match="n >= 1"):
        Permutation(0, 0)
