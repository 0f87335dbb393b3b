"""Synthetic data sets for demos and tests: name -> generator tables.

Every generator returns inputs `(n_samples, n_features)` and targets `(n_samples, k)`:
one 0/1 column for two classes, one-hot columns for more, real values for regression.
"""

from collections.abc import Callable

import numpy as np

from .errors import SpecError
from .labels import Labels, labels_from_targets

Generator = Callable[[int, float, int, np.random.Generator], tuple[np.ndarray, np.ndarray]]

# The notebook's four XOR rows and targets.
NOTEBOOK_XOR_INPUTS = np.array([[1.0, 1.0], [-1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]])
NOTEBOOK_XOR_TARGETS = np.array([[1.0], [0.0], [0.0], [1.0]])


def _labels(classes: np.ndarray, n_classes: int) -> np.ndarray:
    if n_classes == 2:
        return classes[:, None].astype(np.float64)
    one_hot: np.ndarray = np.eye(n_classes)[classes]
    return one_hot


def _xor(
    n: int, noise: float, n_classes: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    if n == 4 and noise == 0:
        return NOTEBOOK_XOR_INPUTS.copy(), NOTEBOOK_XOR_TARGETS.copy()
    # Balanced: each corner n // 4 or n // 4 + 1 times (the extra ones to corners drawn
    # by the seed), in an order shuffled by the seed.
    extra = rng.permutation(4)[: n % 4]
    counts = np.full(4, n // 4)
    counts[extra] += 1
    corners = NOTEBOOK_XOR_INPUTS[rng.permutation(np.repeat(np.arange(4), counts))]
    inputs = corners + noise * rng.standard_normal((n, 2))
    return inputs, (corners[:, 0] * corners[:, 1] > 0).astype(np.float64)[:, None]


def _circles(
    n: int, noise: float, n_classes: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    classes = np.arange(n) % 2
    angle = rng.uniform(0, 2 * np.pi, n)
    radius = np.where(classes == 1, 0.5, 1.0)
    inputs = np.column_stack([radius * np.cos(angle), radius * np.sin(angle)])
    return inputs + noise * rng.standard_normal((n, 2)), _labels(classes, 2)


def _moons(
    n: int, noise: float, n_classes: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    classes = np.arange(n) % 2
    angle = rng.uniform(0, np.pi, n)
    upper = np.column_stack([np.cos(angle), np.sin(angle)])
    lower = np.column_stack([1 - np.cos(angle), 0.5 - np.sin(angle)])
    inputs = np.where(classes[:, None] == 0, upper, lower)
    return inputs + noise * rng.standard_normal((n, 2)), _labels(classes, 2)


def _spiral(
    n: int, noise: float, n_classes: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    classes = np.arange(n) % n_classes
    radius = rng.uniform(0.05, 1.0, n)
    angle = classes * (2 * np.pi / n_classes) + radius * 4 + noise * rng.standard_normal(n)
    inputs = np.column_stack([radius * np.sin(angle), radius * np.cos(angle)])
    return inputs, _labels(classes, n_classes)


def _gaussian(
    n: int, noise: float, n_classes: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    classes = np.arange(n) % n_classes
    angle = classes * (2 * np.pi / n_classes)
    centres = 2 * np.column_stack([np.cos(angle), np.sin(angle)])
    inputs = centres + max(noise, 1e-3) * rng.standard_normal((n, 2))
    return inputs, _labels(classes, n_classes)


def _sine(
    n: int, noise: float, n_classes: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    inputs = rng.uniform(-np.pi, np.pi, (n, 1))
    return inputs, np.sin(inputs) + noise * rng.standard_normal((n, 1))


GENERATORS: dict[str, Generator] = {
    "xor": _xor,
    "circles": _circles,
    "moons": _moons,
    "spiral": _spiral,
    "gaussian": _gaussian,
    "sine": _sine,
}


def generate(
    kind: str, n_samples: int, noise: float = 0.0, seed: int = 0, n_classes: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and targets of a synthetic data set; `xor` with 4 samples and no noise is the
    notebook's own four rows."""
    if kind not in GENERATORS:
        raise SpecError("generator.kind", f"must be one of {', '.join(sorted(GENERATORS))}")
    if n_samples < 2:
        raise SpecError("generator.n_samples", "must be at least 2")
    if not (noise >= 0 and np.isfinite(noise)):
        raise SpecError("generator.noise", "must be a finite number >= 0")
    if n_classes < 2 or (n_classes > 2 and kind not in ("spiral", "gaussian")):
        raise SpecError("generator.n_classes", "must be 2, or more for spiral and gaussian")
    inputs, targets = GENERATORS[kind](
        n_samples, float(noise), n_classes, np.random.default_rng(seed)
    )
    return inputs.astype(np.float64), targets.astype(np.float64)


# Kinds whose targets are values to regress on; every other kind draws classes.
REGRESSION_KINDS = frozenset({"sine"})


def generate_data(
    kind: str, n_samples: int, noise: float = 0.0, seed: int = 0, n_classes: int = 2
) -> tuple[np.ndarray, np.ndarray | Labels]:
    """`generate`, with a classification kind's classes as `Labels` (0 to n_classes - 1)
    rather than encoded targets: what a generated dataset stores."""
    inputs, targets = generate(kind, n_samples, noise, seed, n_classes)
    return inputs, targets if kind in REGRESSION_KINDS else labels_from_targets(targets)
