"""Prometheus metrics: HTTP requests counted in this process, jobs and workers read from
the database at scrape time (workers are other processes, often on other machines)."""

import logging
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from service.db.failures import is_unavailable, reason
from service.db.stats import job_stats, worker_stats
from service.logs import log_event

log = logging.getLogger(__name__)

# The predict route answers in well under a millisecond; training-sized requests take
# seconds: buckets from 0.5 ms to 30 s.
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
)
# Any other method a client sends is counted as "OTHER", so clients cannot add label values.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def new_registry() -> CollectorRegistry:
    """A registry of the app's own (tests create many apps), with the process's CPU,
    memory and file descriptors."""
    # `*_created` series double every counter and histogram and tell nothing here.
    disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped upstream
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    return registry


class HttpMetrics:
    """Requests by route template, method and status, and their latency by route and method.

    The labelled children are looked up once per label combination and kept, so counting
    a request costs two dictionary lookups and two increments.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "backprop_http_requests",
            "HTTP requests by route template, method and status",
            ["route", "method", "status"],
            registry=registry,
        )
        self.duration = Histogram(
            "backprop_http_request_duration_seconds",
            "Time from receiving an HTTP request to the end of its response",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one request that took `seconds`."""
        children = self._children.get((route, method, status))
        if children is None:
            children = (
                self.requests.labels(route, method, str(status)),
                self.duration.labels(route, method),
            )
            self._children[route, method, status] = children
        children[0].inc()
        children[1].observe(seconds)


class JobsCollector:
    """Job and worker metrics, read from the database at every scrape.

    Workers run in other processes (other containers, other machines), so their state is
    the database's: two aggregate queries on the jobs and one read of the workers table,
    on a read-only session per scrape.
    """

    def __init__(self, session_factory: sessionmaker[Session], lease_timeout_seconds: float):
        self.session_factory = session_factory
        self.lease_timeout_seconds = lease_timeout_seconds
        self.epochs_high = 0

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "backprop_database_up", "1 if this scrape could read the job metrics from the database"
        )
        try:
            with self.session_factory() as session:
                stats = job_stats(session)
                workers = worker_stats(session)
        except SQLAlchemyError as error:
            # An unavailable database is one line a scrape, with the driver's reason (the
            # scrape itself says `backprop_database_up 0`); anything else keeps its traceback.
            log_event(
                log,
                "metrics.database_failed",
                level=logging.WARNING,
                exc_info=not is_unavailable(error),
                reason=reason(error),
            )
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up

        jobs = GaugeMetricFamily("backprop_jobs", "Jobs by status", labels=["status"])
        for status, count in stats.by_status.items():
            jobs.add_metric([status.value], count)
        yield jobs
        yield GaugeMetricFamily(
            "backprop_queue_depth",
            "Queued jobs due to run now (not waiting out a retry backoff)",
            value=stats.due,
        )
        # A job resumed from its checkpoint records the epochs since then again, so the
        # sum dips meanwhile; a counter must not go down, so the highest sum seen stands.
        self.epochs_high = max(self.epochs_high, stats.epochs)
        yield CounterMetricFamily(
            "backprop_epochs_trained",
            "Training epochs recorded over all jobs (one per epoch in their histories)",
            value=self.epochs_high,
        )
        ages = GaugeMetricFamily(
            "backprop_job_heartbeat_age_seconds",
            "Seconds since each running job's worker last renewed its lease; past "
            "BACKPROP_LEASE_TIMEOUT_SECONDS the job is taken from it",
            labels=["job_id", "worker"],
        )
        for job in stats.running:
            ages.add_metric([job.job_id, job.worker], job.heartbeat_age_seconds)
        yield ages
        worker_ages = GaugeMetricFamily(
            "backprop_worker_heartbeat_age_seconds",
            "Seconds since each registered worker, busy or idle, last heartbeat; one past "
            "BACKPROP_LEASE_TIMEOUT_SECONDS is not counted in backprop_workers",
            labels=["worker"],
        )
        by_state = {"busy": 0, "idle": 0}
        for worker in workers:
            worker_ages.add_metric([worker.worker], worker.heartbeat_age_seconds)
            if worker.heartbeat_age_seconds <= self.lease_timeout_seconds:
                by_state["idle" if worker.job_id is None else "busy"] += 1
        yield worker_ages
        states = GaugeMetricFamily(
            "backprop_workers",
            "Workers whose heartbeat is within the lease timeout, running a job (busy) or not",
            labels=["state"],
        )
        for state, count in by_state.items():
            states.add_metric([state], count)
        yield states
