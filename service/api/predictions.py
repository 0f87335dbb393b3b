"""Loaded models, kept per process in a bounded LRU cache; the one resolver from a
model name, version or alias (or a job's snapshot) to a loaded model; prediction and
evaluation bodies."""

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session, sessionmaker
from starlette.background import BackgroundTask

from service.api.limits import check_prediction_size
from service.api.schemas.evaluation import EvaluationData
from service.config import Settings
from service.core import Model, SpecError
from service.core.labels import Labels
from service.core.metrics import evaluate
from service.db import datasets as dataset_queries
from service.db import is_unavailable, registry
from service.db import jobs as job_queries

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
        # Per model name (and per ("job", job id)), how many times its versions (its
        # snapshots) were dropped: a load that began before a drop does not cache what it
        # read (see `generation`).
        self._generations: dict[Hashable, int] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Model | None:
        with self._lock:
            model = self._models.get(key)
            if model is not None:
                self._models.move_to_end(key)
            return model

    def generation(self, owner: Hashable) -> int:
        """A number that changes whenever a version of model `owner` (a name), or a
        snapshot of job `("job", job_id)`, is dropped. Take it before reading the database
        and pass it to `load` and `remember`: what a read found before a delete committed
        is then answered once, never cached."""
        with self._lock:
            return self._generations.get(owner, 0)

    def load(
        self, key: Hashable, fetch: Callable[[], bytes], owner: Hashable, generation: int
    ) -> Model:
        """The cached model, or the one `fetch()`'s bytes hold, cached from now on unless
        a version or snapshot of `owner` was dropped since `generation`."""
        model = self.get(key)
        if model is None:
            model = Model.from_bytes(fetch())
            with self._lock:
                if self._generations.get(owner, 0) == generation:
                    self._models[key] = model
                    while len(self._models) > self.size:
                        self._models.popitem(last=False)
        return model

    def recall(self, key: Hashable) -> tuple[int, bool] | None:
        """The last version `key` resolved to, however old, and whether it is older than
        RESOLVE_TTL_SECONDS (see `claim_refresh`)."""
        hit = self._resolved.get(key)
        if hit is None:
            return None
        resolved_at, version = hit
        return version, time.monotonic() - resolved_at >= RESOLVE_TTL_SECONDS

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

    def remember(self, name: str, alias: str | None, version: int, generation: int) -> None:
        """Trust that `alias` (None: the latest) of `name` is `version`, unless a version
        of `name` was dropped since `generation`."""
        key = (name, alias)
        with self._lock:
            if self._generations.get(name, 0) == generation:
                self._resolved[key] = (time.monotonic(), version)
            self._refreshing.discard(key)

    def forget(self, name: str, alias: str | None) -> None:
        with self._lock:
            self._resolved.pop((name, alias), None)
            self._refreshing.discard((name, alias))

    def drop_version(self, name: str, version: int) -> None:
        """Forget a deleted version: its model, and the "latest" or alias answers that
        named it. Call it after the delete committed."""
        with self._lock:
            self._generations[name] = self._generations.get(name, 0) + 1
            self._models.pop((name, version), None)
            self._drop_resolved(lambda key, found: key[0] == name and found == version)

    def drop_model(self, name: str) -> None:
        """Forget every version of a deleted model and what its names resolved to."""
        with self._lock:
            self._generations[name] = self._generations.get(name, 0) + 1
            # Versions are cached as (name, version), snapshots as ("job", job id, epoch).
            self._drop_models(lambda key: len(key) == 2 and key[0] == name)
            self._drop_resolved(lambda key, found: key[0] == name)

    def drop_job(self, job_id: str) -> None:
        """Forget the snapshots of a deleted job. Call it after the delete committed."""
        with self._lock:
            owner = ("job", job_id)
            self._generations[owner] = self._generations.get(owner, 0) + 1
            self._drop_models(lambda key: len(key) == 3 and key[:2] == ("job", job_id))

    def _drop_models(self, matches: Callable[[Any], bool]) -> None:
        for key in [key for key in self._models if isinstance(key, tuple) and matches(key)]:
            del self._models[key]

    def _drop_resolved(self, matches: Callable[[Any, int], bool]) -> None:
        for key in [key for key, (_, found) in self._resolved.items() if matches(key, found)]:
            del self._resolved[key]
            self._refreshing.discard(key)


@dataclass(frozen=True, slots=True)
class Resolved:
    """A loaded model and its version. `refresh`, when set, is the background task for
    the response: the "latest version" or alias it came from is due to be looked up again."""

    model: Model
    version: int
    refresh: BackgroundTask | None = None


class ModelResolver:
    """Turns a model name and a version, an alias or neither (the latest) into a loaded
    model, and a job id and snapshot epoch into one, through the process's model cache
    and read-only sessions. Every prediction route resolves its model here."""

    __slots__ = ("cache", "sessions")

    def __init__(self, cache: ModelCache, sessions: sessionmaker[Session]) -> None:
        self.cache = cache
        self.sessions = sessions

    async def model(
        self, name: str, version: int | None = None, alias: str | None = None
    ) -> Resolved:
        """The model `name` at `version`, or at `alias`, or its latest version. A cached
        model of a known version answers without the database or the thread pool: a
        version never changes, and a "latest" or alias lookup is trusted, stale while it
        is refreshed after the response, as `ModelCache` describes."""
        if version is not None:
            cached = self.cache.get((name, version))
            if cached is not None:
                return Resolved(cached, version)
        else:
            recalled = self.cache.recall((name, alias))
            if recalled is not None:
                remembered, stale = recalled
                cached = self.cache.get((name, remembered))
                if cached is not None:
                    refresh = (
                        BackgroundTask(self._refresh, name, alias, remembered) if stale else None
                    )
                    return Resolved(cached, remembered, refresh)
        found, model = await run_in_threadpool(self._load, name, version, alias)
        return Resolved(model, found)

    async def snapshot(self, job_id: str, epoch: int | None) -> tuple[Model, int]:
        """The job's model at snapshot `epoch` (None: the latest snapshot), and that epoch.
        A snapshot never changes, so a cached one of a given epoch answers without the
        database or the thread pool, as a version does; the latest is looked up each
        time (a running job adds snapshots)."""
        if epoch is not None:
            cached = self.cache.get(("job", job_id, epoch))
            if cached is not None:
                return cached, epoch
        return await run_in_threadpool(self._load_snapshot, job_id, epoch)

    def _load(self, name: str, version: int | None, alias: str | None) -> tuple[int, Model]:
        generation = self.cache.generation(name)
        with self.sessions() as session:
            found = registry.resolve_version(session, name, version, alias)
            model = self.cache.load(
                (name, found),
                lambda: registry.get_version(session, name, found).weights,
                name,
                generation,
            )
            if version is None:
                self.cache.remember(name, alias, found, generation)
        return found, model

    async def _refresh(self, name: str, alias: str | None, remembered: int) -> None:
        # Claimed here, when the task runs, that is once the response was sent: a claim by
        # a request that then failed (a prediction over a size limit) would never be
        # refreshed, and would keep this process on a stale "latest" for good.
        if self.cache.claim_refresh((name, alias)):
            await run_in_threadpool(self._look_up_again, name, alias, remembered)

    def _look_up_again(self, name: str, alias: str | None, remembered: int) -> None:
        # A failed lookup (an alias deleted elsewhere) is forgotten, so the next request
        # looks it up itself and gets the 404. A database that cannot be reached just now
        # proves nothing wrong with the answer: it is kept (stale, tried again after
        # RESOLVE_TTL_SECONDS), so a loaded model goes on answering through an outage.
        generation = self.cache.generation(name)
        try:
            with self.sessions() as session:
                found = registry.resolve_version(session, name, None, alias)
            self.cache.remember(name, alias, found, generation)
        except Exception as error:
            if is_unavailable(error):
                self.cache.remember(name, alias, remembered, generation)
            else:
                self.cache.forget(name, alias)

    def _load_snapshot(self, job_id: str, epoch: int | None) -> tuple[Model, int]:
        owner = ("job", job_id)
        generation = self.cache.generation(owner)
        with self.sessions() as session:
            snapshot = job_queries.get_snapshot(session, job_id, epoch)
            model = self.cache.load(
                ("job", job_id, snapshot.epoch), lambda: snapshot.weights, owner, generation
            )
        return model, snapshot.epoch


# Below this many rows a prediction is cheaper than handing it to a thread.
INLINE_ROWS = 64


async def predict_off_loop(trained: Model, inputs: Any, **extra: Any) -> dict[str, Any]:
    """`prediction_body`, in the thread pool for large batches so the event loop stays free."""
    if len(inputs) < INLINE_ROWS:
        return prediction_body(trained, inputs, **extra)
    return await run_in_threadpool(prediction_body, trained, inputs, **extra)


def prediction_body(trained: Model, inputs: Any, **extra: Any) -> dict[str, Any]:
    """Outputs, and for classifiers probabilities and labels, as arrays orjson writes.
    A model that knows its classes names them; a classifier trained on encoded targets
    answers class indices and its outputs as probabilities, as it always has. Rows whose
    outputs are not finite (values so large that the network's sums overflow) are a
    SpecError naming the first of them."""
    # Overflowing sums are no error where tanh and sigmoid saturate on the infinities; only
    # outputs that end up infinite or NaN are, and JSON could not carry them.
    with np.errstate(over="ignore", invalid="ignore"):
        outputs = trained.predict(inputs)
    if not np.isfinite(outputs).all():
        row = int(np.argwhere(~np.isfinite(outputs))[0][0])
        raise SpecError(
            f"inputs[{row}]", "the model's outputs overflow for this row: its values are too large"
        )
    body: dict[str, Any] = {"outputs": outputs}
    if trained.classes is not None:
        # Outputs of an identity layer trained on labels (the notebook's XOR network) pick
        # a class but are no probabilities.
        if trained.is_classifier:
            body["probabilities"] = trained.probabilities(outputs)
        body["labels"] = trained.labels(outputs)  # a list of names, as the classes were given
        body["classes"] = trained.classes
    elif trained.is_classifier:
        body["probabilities"] = outputs
        body["labels"] = trained.labels(outputs)
    body.update(extra)
    return body


def evaluation_body(
    settings: Settings, sessions: sessionmaker[Session], trained: Model, data: EvaluationData
) -> dict[str, Any]:
    """Loss, metrics and (for classifiers) the confusion matrix of `trained` on the
    request's stored dataset or inline rows. Runs in the thread pool: it reads a dataset
    and predicts all of it."""
    if data.dataset_id is None:
        assert data.inputs is not None
        check_prediction_size(settings, trained.spec, len(data.inputs))
        if data.labels is not None:
            return _evaluate(trained, data.inputs, Labels.from_values(data.labels))
        return _evaluate(trained, data.inputs, data.targets)
    with sessions() as session:
        dataset = dataset_queries.get_dataset(session, data.dataset_id)
        # Before its arrays are read: the row count is on the row.
        check_prediction_size(settings, trained.spec, dataset.n_samples, field="dataset_id")
        inputs, answers = dataset_queries.dataset_data(dataset)
    try:
        return _evaluate(trained, inputs, answers)
    except SpecError as error:
        # What does not fit is the dataset the client chose, not a field it sent.
        raise SpecError(
            "dataset_id", f"dataset {data.dataset_id} does not fit the model: {error}"
        ) from None


def _evaluate(trained: Model, inputs: Any, answers: Any) -> dict[str, Any]:
    """`answers` are Labels, or target rows for regression models and for classifiers
    trained on encoded targets (which know no class names)."""
    if isinstance(answers, Labels):
        return evaluate(trained, inputs, labels=answers)
    if trained.classes is not None:
        raise SpecError(
            "targets",
            f"the model predicts the classes {list(trained.classes)}: give labels, not targets",
        )
    return evaluate(trained, inputs, targets=answers)
