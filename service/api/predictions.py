"""Loaded models, kept per process in a bounded LRU cache, and prediction bodies."""

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

from fastapi.concurrency import run_in_threadpool

from service.core import Model

# How long a "latest version" or alias lookup is trusted before it is looked up again:
# another process's new version or alias move shows about this soon; this process's own
# alias changes show at once.
RESOLVE_TTL_SECONDS = 1.0


class ModelCache:
    """Models by immutable key (a model version, a job's snapshot epoch), least recently
    used out; plus the answers to "which version is latest / has this alias", refreshed
    in the background once they are RESOLVE_TTL_SECONDS old (stale while revalidating:
    expiring them outright sent every in-flight request to the database at once, the
    1-row predict's p99)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._models: OrderedDict[Hashable, Model] = OrderedDict()
        self._resolved: dict[Hashable, tuple[float, int]] = {}
        self._refreshing: set[Hashable] = set()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Model | None:
        with self._lock:
            model = self._models.get(key)
            if model is not None:
                self._models.move_to_end(key)
            return model

    def load(self, key: Hashable, fetch: Callable[[], bytes]) -> Model:
        """The cached model, or the one `fetch()`'s bytes hold, cached from now on."""
        model = self.get(key)
        if model is None:
            model = Model.from_bytes(fetch())
            with self._lock:
                self._models[key] = model
                while len(self._models) > self.size:
                    self._models.popitem(last=False)
        return model

    def recall(self, key: Hashable) -> int | None:
        """The last version `key` resolved to, however old (see `claim_refresh`)."""
        hit = self._resolved.get(key)
        return None if hit is None else hit[1]

    def claim_refresh(self, key: Hashable) -> bool:
        """True for the one caller that should look `key` up again because its answer is
        older than RESOLVE_TTL_SECONDS; the others keep using the old answer meanwhile."""
        with self._lock:
            hit = self._resolved.get(key)
            if hit is None or key in self._refreshing:
                return False
            if time.monotonic() - hit[0] < RESOLVE_TTL_SECONDS:
                return False
            self._refreshing.add(key)
            return True

    def remember(self, key: Hashable, version: int) -> None:
        with self._lock:
            self._resolved[key] = (time.monotonic(), version)
            self._refreshing.discard(key)

    def forget(self, name: str, alias: str | None) -> None:
        with self._lock:
            self._resolved.pop((name, alias), None)
            self._refreshing.discard((name, alias))


# Below this many rows a prediction is cheaper than handing it to a thread.
INLINE_ROWS = 64


async def predict_off_loop(trained: Model, inputs: Any, **extra: Any) -> dict[str, Any]:
    """`prediction_body`, in the thread pool for large batches so the event loop stays free."""
    if len(inputs) < INLINE_ROWS:
        return prediction_body(trained, inputs, **extra)
    return await run_in_threadpool(prediction_body, trained, inputs, **extra)


def prediction_body(trained: Model, inputs: Any, **extra: Any) -> dict[str, Any]:
    """Outputs, and for classifiers probabilities and labels, as arrays orjson writes."""
    outputs = trained.predict(inputs)
    body: dict[str, Any] = {"outputs": outputs}
    if trained.is_classifier:
        body["probabilities"] = outputs
        body["labels"] = trained.labels(outputs)
    body.update(extra)
    return body
