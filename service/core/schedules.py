"""Learning-rate schedules: pure functions of the epoch, so resuming needs no extra state."""

import math
from collections.abc import Callable

# (base rate, epoch counted from 0, decay, decay_every, total epochs) -> rate for that epoch
Schedule = Callable[[float, int, float, int, int], float]

SCHEDULES: dict[str, Schedule] = {
    "constant": lambda lr, epoch, decay, every, total: lr,
    "step": lambda lr, epoch, decay, every, total: lr * decay ** (epoch // every),
    "exponential": lambda lr, epoch, decay, every, total: lr * decay ** (epoch / every),
    "inverse_time": lambda lr, epoch, decay, every, total: lr / (1 + decay * epoch / every),
    "cosine": lambda lr, epoch, decay, every, total: (
        lr * 0.5 * (1 + math.cos(math.pi * epoch / total))
    ),
}

# Schedules that multiply the rate by `decay` once per `decay_every` epochs: a decay
# above 1 would grow the rate. (inverse_time's decay is a rate of decay: any size decays.)
FACTOR_SCHEDULES = ("exponential", "step")
