"""Synthetic data sets have the shapes and geometry their names promise, and CSV text
parses into numbers or is refused with the row that is wrong."""

from typing import Any

import numpy as np
import pytest

from service.core import SpecError
from service.core.datasets import GENERATORS, generate, generate_data
from service.core.labels import Labels

TWO_CLASS = ["xor", "circles", "moons"]


def test_xor_with_four_noiseless_samples_is_the_notebooks_own_rows() -> None:
    inputs, targets = generate("xor", 4)

    np.testing.assert_array_equal(inputs, [[1, 1], [-1, 1], [1, -1], [-1, -1]])
    np.testing.assert_array_equal(targets, [[1], [0], [0], [1]])


@pytest.mark.parametrize("n", [5, 6, 7, 8, 9, 30, 101])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sampled_xor_is_balanced_across_the_four_corners(n: int, seed: int) -> None:
    # Drawing corners independently gave 8 samples one corner three times and another once.
    inputs, targets = generate("xor", n, noise=0.0, seed=seed)

    corners, counts = np.unique(inputs, axis=0, return_counts=True)
    assert len(corners) == 4 or n < 4
    assert set(counts) <= {n // 4, n // 4 + 1}
    assert counts.sum() == n
    # Two corners per class, so the classes are balanced too (within the odd samples).
    assert abs(2 * int(targets.sum()) - n) <= 2


def test_sampled_xor_labels_each_corner_by_the_sign_of_its_product() -> None:
    inputs, targets = generate("xor", 200, noise=0.0, seed=3)
    noisy, noisy_targets = generate("xor", 200, noise=0.1, seed=3)

    assert set(map(tuple, inputs.tolist())) == {(1, 1), (-1, 1), (1, -1), (-1, -1)}
    np.testing.assert_array_equal(targets[:, 0], inputs[:, 0] * inputs[:, 1] > 0)
    # Noise moves the points, not the labels: each point stays near its corner.
    np.testing.assert_array_equal(noisy_targets, targets)
    assert 0 < np.abs(noisy - inputs).max() < 0.5


def test_circles_put_class_one_inside_at_half_the_radius() -> None:
    inputs, targets = generate("circles", 100, noise=0.0, seed=1)
    radius = np.hypot(inputs[:, 0], inputs[:, 1])

    assert targets.shape == (100, 1)
    np.testing.assert_allclose(radius, np.where(targets[:, 0] == 1, 0.5, 1.0), atol=1e-12)
    assert targets.sum() == 50


def test_moons_are_two_interleaved_half_circles() -> None:
    inputs, targets = generate("moons", 100, noise=0.0, seed=1)
    x, y = inputs[:, 0], inputs[:, 1]
    upper = targets[:, 0] == 0

    assert targets.sum() == 50
    # Class 0: the upper half of the unit circle; class 1: the lower half of the unit
    # circle centred at (1, 0.5).
    np.testing.assert_allclose(np.hypot(x[upper], y[upper]), 1.0, atol=1e-12)
    assert (y[upper] >= 0).all()
    np.testing.assert_allclose(np.hypot(x[~upper] - 1, y[~upper] - 0.5), 1.0, atol=1e-12)
    assert (y[~upper] <= 0.5).all()


def test_spiral_arms_turn_with_the_radius_one_arm_per_class() -> None:
    inputs, targets = generate("spiral", 90, noise=0.0, seed=2, n_classes=3)
    radius = np.hypot(inputs[:, 0], inputs[:, 1])
    classes = targets.argmax(axis=1)

    assert targets.shape == (90, 3)
    np.testing.assert_array_equal(targets.sum(axis=1), 1.0)
    assert np.array_equal(np.bincount(classes), [30, 30, 30])
    assert radius.min() >= 0.05 and radius.max() <= 1.0
    # inputs = r * (sin, cos) of the angle class * 2 pi / 3 + 4 r.
    angle = np.arctan2(inputs[:, 0], inputs[:, 1])
    expected = classes * 2 * np.pi / 3 + 4 * radius
    np.testing.assert_allclose(np.angle(np.exp(1j * (angle - expected))), 0.0, atol=1e-9)


def test_gaussian_blobs_sit_on_a_circle_of_radius_two_with_the_noise_as_spread() -> None:
    inputs, targets = generate("gaussian", 4000, noise=0.25, seed=0, n_classes=4)
    classes = targets.argmax(axis=1)
    angle = classes * np.pi / 2
    centres = 2 * np.column_stack([np.cos(angle), np.sin(angle)])
    tight, _ = generate("gaussian", 40, noise=0.0, seed=0, n_classes=4)

    assert (inputs - centres).std() == pytest.approx(0.25, rel=0.05)
    assert abs((inputs - centres).mean()) < 0.02
    # No noise still spreads the points a little (1e-3), so they are not all one point.
    tight_centres = np.repeat([[2, 0], [0, 2], [-2, 0], [0, -2]], 10, axis=0)
    order = np.argsort(np.arange(40) % 4, kind="stable")
    offsets = tight[order] - tight_centres
    assert 0 < np.abs(offsets).max() < 0.01


def test_sine_targets_are_the_sine_of_inputs_between_minus_and_plus_pi() -> None:
    inputs, targets = generate("sine", 500, noise=0.0, seed=4)
    noisy_inputs, noisy = generate("sine", 5000, noise=0.2, seed=4)

    assert inputs.shape == targets.shape == (500, 1)
    assert inputs.min() >= -np.pi and inputs.max() <= np.pi
    assert inputs.min() < -3 and inputs.max() > 3
    np.testing.assert_allclose(targets, np.sin(inputs), atol=1e-15)
    assert (noisy - np.sin(noisy_inputs)).std() == pytest.approx(0.2, rel=0.05)


@pytest.mark.parametrize("kind", TWO_CLASS)
def test_two_class_sets_have_about_balanced_0_1_targets_and_noise_as_spread(kind: str) -> None:
    clean, targets = generate(kind, 2000, noise=0.0, seed=5)
    noisy, noisy_targets = generate(kind, 2000, noise=0.3, seed=5)

    assert clean.shape == (2000, 2) and targets.shape == (2000, 1)
    assert set(np.unique(targets)) == {0.0, 1.0}
    assert targets.mean() == pytest.approx(0.5, abs=0.05)
    assert noisy.dtype == noisy_targets.dtype == np.float64
    assert (noisy - clean).std() == pytest.approx(0.3, rel=0.05)


@pytest.mark.parametrize("kind", sorted(GENERATORS))
def test_generators_repeat_with_the_seed(kind: str) -> None:
    n_classes = 3 if kind in ("spiral", "gaussian") else 2
    first = generate(kind, 50, noise=0.1, seed=11, n_classes=n_classes)
    again = generate(kind, 50, noise=0.1, seed=11, n_classes=n_classes)
    other = generate(kind, 50, noise=0.1, seed=12, n_classes=n_classes)

    assert first[0].tobytes() == again[0].tobytes()
    assert first[1].tobytes() == again[1].tobytes()
    assert first[0].tobytes() != other[0].tobytes()


@pytest.mark.parametrize("kind", ["spiral", "gaussian"])
def test_two_class_spiral_and_gaussian_use_one_0_1_column(kind: str) -> None:
    _, targets = generate(kind, 10, n_classes=2)

    assert targets.shape == (10, 1)
    np.testing.assert_array_equal(targets[:, 0], np.arange(10) % 2)


@pytest.mark.parametrize(
    ("arguments", "field", "message"),
    [
        (
            {"kind": "blobs"},
            "generator.kind",
            "must be one of circles, gaussian, moons, sine, spiral, xor",
        ),
        ({"n_samples": 1}, "generator.n_samples", "must be at least 2"),
        ({"noise": -0.1}, "generator.noise", "must be a finite number >= 0"),
        ({"noise": float("nan")}, "generator.noise", "must be a finite number >= 0"),
        ({"noise": float("inf")}, "generator.noise", "must be a finite number >= 0"),
        ({"n_classes": 1}, "generator.n_classes", "must be 2, or more for spiral and gaussian"),
        ({"n_classes": 3}, "generator.n_classes", "must be 2, or more for spiral and gaussian"),
    ],
)
def test_generator_arguments_are_checked(
    arguments: dict[str, object], field: str, message: str
) -> None:
    call: dict[str, object] = {"kind": "moons", "n_samples": 10, **arguments}

    with pytest.raises(SpecError) as error:
        generate(**call)  # type: ignore[arg-type]

    assert error.value.field == field
    assert error.value.message.startswith(message)


def test_smallest_accepted_generator_arguments() -> None:
    inputs, targets = generate("spiral", 2, noise=0.0, n_classes=3)

    assert inputs.shape == (2, 2) and targets.shape == (2, 3)


def _reference(kind: str, n: int, noise: float, seed: int, k: int) -> Any:
    """Each generator's inputs written out plainly, drawing from the generator in the order
    the core does: a data set made from a generator spec is the same in every release."""
    rng = np.random.default_rng(seed)
    classes = np.arange(n) % k
    if kind == "xor":
        corners = np.array([[1.0, 1.0], [-1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]])
        counts = np.full(4, n // 4)
        counts[rng.permutation(4)[: n % 4]] += 1
        chosen = rng.permutation(np.repeat(np.arange(4), counts))
        return corners[chosen] + noise * rng.standard_normal((n, 2))
    if kind == "circles":
        angle = rng.uniform(0, 2 * np.pi, n)
        radius = np.where(classes == 1, 0.5, 1.0)[:, None]
        points = radius * np.column_stack([np.cos(angle), np.sin(angle)])
        return points + noise * rng.standard_normal((n, 2))
    if kind == "moons":
        angle = rng.uniform(0, np.pi, n)
        upper = np.column_stack([np.cos(angle), np.sin(angle)])
        lower = np.column_stack([1 - np.cos(angle), 0.5 - np.sin(angle)])
        points = np.where(classes[:, None] == 0, upper, lower)
        return points + noise * rng.standard_normal((n, 2))
    if kind == "spiral":
        radius = rng.uniform(0.05, 1.0, n)
        angle = classes * 2 * np.pi / k + 4 * radius + noise * rng.standard_normal(n)
        return np.column_stack([radius * np.sin(angle), radius * np.cos(angle)])
    if kind == "gaussian":
        angle = classes * 2 * np.pi / k
        centres = 2 * np.column_stack([np.cos(angle), np.sin(angle)])
        return centres + noise * rng.standard_normal((n, 2))
    inputs = rng.uniform(-np.pi, np.pi, (n, 1))
    return np.column_stack([inputs, np.sin(inputs) + noise * rng.standard_normal((n, 1))])


@pytest.mark.parametrize("kind", sorted(GENERATORS))
def test_generated_data_is_the_documented_formula_drawn_from_the_seed(kind: str) -> None:
    k = 3 if kind in ("spiral", "gaussian") else 2
    inputs, targets = generate(kind, 30, noise=0.2, seed=9, n_classes=k)

    got = np.column_stack([inputs, targets]) if kind == "sine" else inputs
    np.testing.assert_allclose(got, _reference(kind, 30, 0.2, 9, k), rtol=0, atol=1e-12)


def test_seed_defaults_to_zero() -> None:
    assert generate("moons", 20)[0].tobytes() == generate("moons", 20, seed=0)[0].tobytes()


def test_generated_classes_come_as_labels_and_sine_as_targets() -> None:
    inputs, labels = generate_data("spiral", 30, noise=0.1, seed=3, n_classes=3)
    same_inputs, one_hot = generate("spiral", 30, noise=0.1, seed=3, n_classes=3)

    assert isinstance(labels, Labels) and labels.classes == (0, 1, 2)
    assert np.array_equal(inputs, same_inputs)
    assert np.array_equal(labels.indices, one_hot.argmax(axis=1))
    _, values = generate_data("sine", 10, seed=3)
    assert not isinstance(values, Labels)
    assert np.array_equal(values, generate("sine", 10, seed=3)[1])
