"""The DEX age loss on age groups: the interval likelihood, and year labels unchanged."""
import numpy as np

from facenet_mtl.training.losses import AgeBinCrossEntropy


def softmax_rows(logits):
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return (e / e.sum(-1, keepdims=True)).astype(np.float32)


def per_sample(y_true, y_pred):
    return np.asarray(AgeBinCrossEntropy(reduction="none")(np.asarray(y_true, np.float32), y_pred))


def test_a_group_costs_minus_log_of_the_mass_inside_it():
    probs = softmax_rows(np.random.default_rng(0).normal(size=(2, 101)))
    loss = per_sample([[0, 0, 20, 29], [0, 0, 70, 100]], probs)
    np.testing.assert_allclose(loss, [-np.log(probs[0, 20:30].sum()), -np.log(probs[1, 70:].sum())], rtol=1e-5)


def test_all_mass_inside_the_group_costs_nothing_and_outside_costs_a_lot():
    inside = np.zeros((1, 101), np.float32)
    inside[0, 25] = 1.0
    assert per_sample([[0, 0, 20, 29]], inside)[0] < 1e-5
    assert per_sample([[0, 0, 30, 39]], inside)[0] > 10


def test_years_give_the_same_loss_with_or_without_bounds():
    probs = softmax_rows(np.random.default_rng(1).normal(size=(3, 101)))
    years = [[25, 0], [40, 2.0], [3, 0]]
    with_bounds = [row + [-1, -1] for row in years]
    np.testing.assert_allclose(per_sample(with_bounds, probs), per_sample(years, probs), rtol=1e-6)
    assert abs(per_sample([[25, 0]], probs)[0] + np.log(probs[0, 25])) < 1e-4
