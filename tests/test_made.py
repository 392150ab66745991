"""Question 1: MADE's masks make it autoregressive and normalised."""

from __future__ import annotations

import itertools

import pytest
import torch

from helpers.made import MADE, all_binary_vectors, input_jacobian, made_degrees, made_masks


@pytest.mark.parametrize("n, hidden", [(4, (5, 5)), (4, (6,)), (5, (8, 8, 8)), (3, (4, 4))])
def test_jacobian_is_strictly_lower_triangular(n, hidden):
    model = MADE(n, hidden, seed=1)
    for _ in range(30):
        J = input_jacobian(model, torch.rand(n) * 4 - 2)
        assert torch.all(J.triu() == 0)  # output d never sees x_d or later inputs
    paths = torch.eye(n)
    for mask in model.masks:
        paths = mask @ paths
    assert torch.equal(paths > 0, torch.ones(n, n).tril(-1).bool())  # but can see every x_<d


@pytest.mark.parametrize("n, hidden", [(4, (5, 5)), (5, (7,)), (6, (10, 10))])
def test_probabilities_of_all_binary_vectors_sum_to_one(n, hidden):
    model = MADE(n, hidden, seed=2)
    x = all_binary_vectors(n)
    assert x.shape == (2**n, n)
    assert model.log_prob(x).exp().sum().item() == pytest.approx(1.0, abs=1e-5)


def test_all_binary_vectors_are_distinct_and_complete():
    x = all_binary_vectors(3)
    assert {tuple(r) for r in x.int().tolist()} == set(itertools.product([0, 1], repeat=3))


def test_mask_rule_from_degrees():
    degrees = made_degrees(4, (5,))
    assert degrees[0].tolist() == [1, 2, 3, 4]
    assert set(degrees[1].tolist()) == {1, 2, 3}
    assert degrees[1].tolist() == sorted(degrees[1].tolist())  # the diagram's staircase
    into_hidden, into_output = made_masks(degrees, 4)
    for k, j in itertools.product(range(5), range(4)):
        assert into_hidden[k, j] == float(degrees[1][k] >= j + 1)
    for d, k in itertools.product(range(4), range(5)):
        assert into_output[d, k] == float(d + 1 > degrees[1][k])
    assert into_output[0].sum() == 0  # p(x_1) has no inputs


def test_masks_are_applied_in_the_forward_pass():
    model = MADE(n=4, hidden=(5, 5))  # the notebook's call
    assert model.n == 4
    for layer in model.net:
        if hasattr(layer, "mask"):
            layer.weight.data.fill_(1.0)  # even with all-ones weights, masks cut connections
    J = input_jacobian(model, torch.rand(4) + 0.1)
    assert torch.all(J.triu() == 0)


def test_made_needs_two_inputs():
    with pytest.raises(ValueError, match="n >= 2"):
        MADE(1, (3,))


def test_building_a_made_leaves_the_global_random_stream_alone():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    MADE(4, (5, 5), seed=0)
    assert torch.equal(torch.get_rng_state(), before)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    MADE(6, (8,), seed=7)
    assert torch.equal(torch.rand(3), expected)  # what torch.rand draws next is unchanged


def test_the_seed_alone_decides_the_weights():
    torch.manual_seed(1)
    a = MADE(4, (5, 5), seed=3).state_dict()
    torch.manual_seed(2)
    b = MADE(4, (5, 5), seed=3).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
