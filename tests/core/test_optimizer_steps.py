"""One optimizer step, worked by hand, for each optimizer.

Three parameters `p = [0.5, -1.0, 2.0]` with gradient `g = [1.0, -2.0, 0.5]`. The state
before the step (velocity, Adam's moments and step count) is set to chosen values, so the
momentum and the decay rates act on something and every term of the formula shows.
"""

import numpy as np
import pytest

from service.core import optimizers
from service.core.optimizers import EVERYTHING, OPTIMIZERS, Optimizer, make_optimizer

PARAMS = [0.5, -1.0, 2.0]
GRADS = [1.0, -2.0, 0.5]
TOL = 1e-12


def _bind(
    name: str,
    params: np.ndarray,
    grads: np.ndarray,
    parts: list[slice] | None = None,
    *,
    momentum: float = 0.9,
    beta1: float = 0.9,
    beta2: float = 0.999,
    epsilon: float = 1e-8,
) -> Optimizer:
    return make_optimizer(
        name,
        params,
        grads,
        parts or [slice(0, params.size)],
        momentum=momentum,
        beta1=beta1,
        beta2=beta2,
        epsilon=epsilon,
    )


def _step(optimizer: Optimizer, lr: float) -> None:
    optimizer.begin_step()
    optimizer.apply(EVERYTHING, lr)


def test_sgd_step_is_learning_rate_times_gradient() -> None:
    # lr = 0.1: p - lr g = [0.5 - 0.1, -1.0 + 0.2, 2.0 - 0.05] = [0.4, -0.8, 1.95]
    params, grads = np.array(PARAMS), np.array(GRADS)
    sgd = _bind("sgd", params, grads)

    _step(sgd, 0.1)

    np.testing.assert_allclose(params, [0.4, -0.8, 1.95], rtol=0, atol=TOL)
    assert sgd.state() == {}


def test_sgd_steps_a_large_vector_in_chunks_exactly_as_in_one_go() -> None:
    # Over SGD_CHUNK values the step goes through a small scratch, chunk by chunk; every
    # value must get exactly p - lr g, the last (short) chunk and each part's edges too.
    rng = np.random.default_rng(0)
    size = 2 * optimizers.SGD_CHUNK + 123
    params, grads = rng.standard_normal(size), rng.standard_normal(size)
    expected = params - 0.1 * grads
    parts = [slice(0, 5), slice(5, size)]
    sgd = _bind("sgd", params, grads, parts)

    sgd.begin_step()
    sgd.apply(1, 0.1)
    sgd.apply(0, 0.1)

    assert params.tobytes() == expected.tobytes()


def test_momentum_step_adds_the_decayed_velocity() -> None:
    # mu = 0.9, lr = 0.1, velocity before v = [0.1, -0.2, 0.0]
    # v' = mu v - lr g = [0.09 - 0.1, -0.18 + 0.2, 0.0 - 0.05] = [-0.01, 0.02, -0.05]
    # p' = p + v'      = [0.5 - 0.01, -1.0 + 0.02, 2.0 - 0.05] = [0.49, -0.98, 1.95]
    params, grads = np.array(PARAMS), np.array(GRADS)
    momentum = _bind("momentum", params, grads, momentum=0.9)
    momentum.load_state({"velocity": np.array([0.1, -0.2, 0.0])})

    _step(momentum, 0.1)

    np.testing.assert_allclose(params, [0.49, -0.98, 1.95], rtol=0, atol=TOL)
    np.testing.assert_allclose(momentum.state()["velocity"], [-0.01, 0.02, -0.05], atol=TOL)


def test_nesterov_step_looks_ahead_along_the_new_velocity() -> None:
    # Same velocity update as momentum: v' = [-0.01, 0.02, -0.05]
    # p' = p + mu v' - lr g = p + [0.9 * -0.01 - 0.1, 0.9 * 0.02 + 0.2, 0.9 * -0.05 - 0.05]
    #    = p + [-0.109, 0.218, -0.095] = [0.391, -0.782, 1.905]
    params, grads = np.array(PARAMS), np.array(GRADS)
    nesterov = _bind("nesterov", params, grads, momentum=0.9)
    nesterov.load_state({"velocity": np.array([0.1, -0.2, 0.0])})

    _step(nesterov, 0.1)

    np.testing.assert_allclose(params, [0.391, -0.782, 1.905], rtol=0, atol=TOL)
    np.testing.assert_allclose(nesterov.state()["velocity"], [-0.01, 0.02, -0.05], atol=TOL)


def test_adam_step_uses_decayed_moments_and_bias_correction() -> None:
    # beta1 = 0.5, beta2 = 0.6, eps = 0.25, lr = 0.075; one step taken before, so t = 2.
    # Moments before: m = [0.0, 0.2, 0.1], v = [1.0, 4.0, 0.25] (= g * g).
    # m' = 0.5 m + 0.5 g     = [0.0 + 0.5, 0.1 - 1.0, 0.05 + 0.25]  = [0.5, -0.9, 0.3]
    # v' = 0.6 v + 0.4 g * g = [0.6 + 0.4, 2.4 + 1.6, 0.15 + 0.1]   = [1.0, 4.0, 0.25]
    # sqrt(v') + eps = [1.25, 2.25, 0.75];  m' / (sqrt(v') + eps) = [0.4, -0.4, 0.4]
    # lr_t = lr * sqrt(1 - 0.6^2) / (1 - 0.5^2) = 0.075 * 0.8 / 0.75 = 0.08
    # p' = p - lr_t * [0.4, -0.4, 0.4] = [0.5 - 0.032, -1.0 + 0.032, 2.0 - 0.032]
    params, grads = np.array(PARAMS), np.array(GRADS)
    adam = _bind("adam", params, grads, beta1=0.5, beta2=0.6, epsilon=0.25)
    adam.load_state(
        {
            "first": np.array([0.0, 0.2, 0.1]),
            "second": np.array([1.0, 4.0, 0.25]),
            "steps": np.array(1),
        }
    )

    _step(adam, 0.075)

    np.testing.assert_allclose(params, [0.468, -0.968, 1.968], rtol=0, atol=TOL)
    state = adam.state()
    np.testing.assert_allclose(state["first"], [0.5, -0.9, 0.3], rtol=0, atol=TOL)
    np.testing.assert_allclose(state["second"], [1.0, 4.0, 0.25], rtol=0, atol=TOL)
    assert int(state["steps"]) == 2


def test_adam_first_step_from_zero_moments_is_bias_corrected_with_t_1() -> None:
    # beta1 = 0.5, beta2 = 0.75, eps = 0.25, lr = 0.3, fresh state, so t = 1.
    # m' = 0.5 g = [0.5, -1.0, 0.25];  v' = 0.25 g * g, sqrt(v') = 0.5 |g| = [0.5, 1.0, 0.25]
    # lr_1 = 0.3 * sqrt(1 - 0.75) / (1 - 0.5) = 0.3 * 0.5 / 0.5 = 0.3
    # m' / (sqrt(v') + eps) = [0.5 / 0.75, -1.0 / 1.25, 0.25 / 0.5] = [2/3, -0.8, 0.5]
    # p' = p - 0.3 * [2/3, -0.8, 0.5] = [0.5 - 0.2, -1.0 + 0.24, 2.0 - 0.15]
    params, grads = np.array(PARAMS), np.array(GRADS)
    adam = _bind("adam", params, grads, beta1=0.5, beta2=0.75, epsilon=0.25)

    _step(adam, 0.3)

    np.testing.assert_allclose(params, [0.3, -0.76, 1.85], rtol=0, atol=TOL)
    assert int(adam.state()["steps"]) == 1


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_stepping_layer_by_layer_equals_one_step_of_everything(name: str) -> None:
    # The dirty update rule applies each layer's part as soon as its gradient is known; the
    # parts together must make exactly the step that one update of everything makes.
    parts = [slice(0, 2), slice(2, 3)]
    whole_params, grads = np.array(PARAMS), np.array(GRADS)
    whole = _bind(name, whole_params, grads, parts)
    by_part_params = np.array(PARAMS)
    by_part = _bind(name, by_part_params, grads, parts)
    for optimizer in (whole, by_part):
        _step(optimizer, 0.1)  # a first step, so momentum and Adam carry state into the next

    whole.begin_step()
    whole.apply(EVERYTHING, 0.1)
    by_part.begin_step()
    after_first_part = by_part_params.copy()
    by_part.apply(1, 0.1)
    after_second_part = by_part_params.copy()
    by_part.apply(0, 0.1)

    # Each apply moves its own part only.
    assert np.array_equal(after_second_part[:2], after_first_part[:2])
    assert not np.array_equal(after_second_part[2:], after_first_part[2:])
    np.testing.assert_allclose(by_part_params, whole_params, rtol=0, atol=TOL)
    for key, value in whole.state().items():
        np.testing.assert_allclose(by_part.state()[key], value, rtol=0, atol=TOL)


def test_unknown_optimizer_name_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'"):
        _bind("rmsprop", np.array(PARAMS), np.array(GRADS))
