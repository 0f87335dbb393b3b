"""Service settings, read from environment variables prefixed with BACKPROP_."""

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Any, Literal, Self

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from service.logs import LogFormatSetting

Scope = Literal["read", "write"]
ENV_PREFIX = "BACKPROP_"


@dataclass(frozen=True)
class ApiKey:
    """A configured API key, kept as its SHA-256 digest only; `read` keys may only read."""

    digest: bytes
    scope: Scope


def parse_api_keys(value: str) -> tuple[ApiKey, ...]:
    """`"KEY1,KEY2:read"` -> the keys' digests and scopes; the plaintext is not kept."""
    keys = []
    for entry in value.split(","):
        key, _, scope = entry.strip().partition(":")
        if not key and not scope:
            continue
        if not key or scope not in ("", "read", "write"):
            raise ValueError(
                "each entry of BACKPROP_API_KEYS is KEY, KEY:read or KEY:write "
                "(keys contain no ',' or ':')"
            )
        keys.append(ApiKey(hashlib.sha256(key.encode()).digest(), "read" if scope else "write"))
    return tuple(keys)


class Settings(BaseSettings):
    """Every tunable of the service; `BACKPROP_DATABASE_URL` sets `database_url`, and so on."""

    # Errors name the setting but never echo its value: it may be a key or a password.
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="ignore", hide_input_in_errors=True
    )

    database_url: str = "sqlite:///./backprop.db"
    # SQLite's `synchronous` level in WAL mode: `normal` loses no commit when a process
    # dies, but a power cut or OS crash can lose the last ones; `full` syncs every commit.
    # README.md, "Durability".
    sqlite_synchronous: Literal["normal", "full"] = "normal"
    workers: int = 1
    host: str = "127.0.0.1"
    port: int = 8000

    max_body_bytes: int = 10 * 1024 * 1024
    # The CSV upload route's body instead: room for an MNIST-sized file (60,000 rows of
    # 785 integers, 168 MB). The file is spooled to disk, not held in memory.
    max_upload_bytes: int = 256 * 1024 * 1024
    max_dataset_rows: int = 100_000
    max_features: int = 1_000
    max_parameters: int = 5_000_000
    max_epochs: int = 100_000
    # Epochs x training samples of one job: bounds its work (and its history) as a whole.
    max_epoch_samples: int = 1_000_000_000
    # Queued plus running jobs at once; a new job beyond it is refused with 429.
    max_active_jobs: int = 1_000
    # One prediction request: rows x the model's parameters (its multiply-adds, about a
    # second of one core at the default) and rows x outputs (the size of the answer).
    max_predict_row_parameters: int = 1_000_000_000
    max_predict_outputs: int = 10_000_000

    # Comma-separated `KEY` or `KEY:read` (GET and HEAD only); when set, every request
    # but the probes' and the docs' needs `Authorization: Bearer KEY`.
    api_keys: Annotated[tuple[ApiKey, ...], NoDecode] = Field((), repr=False)

    # A running job's worker refreshes its lease this often (and learns of a cancel); every
    # worker also re-queues jobs whose lease is older than `lease_timeout_seconds` this often.
    # Must be shorter than the lease timeout (see `_leases_outlive_heartbeats`).
    heartbeat_seconds: float = Field(5.0, gt=0, allow_inf_nan=False)
    lease_timeout_seconds: float = Field(30.0, gt=0, allow_inf_nan=False)
    # A job whose worker died this many times ends `failed`; before that it is retried
    # after min(60, retry_backoff_seconds * 2**attempts) seconds.
    max_attempts: int = Field(3, ge=1)
    retry_backoff_seconds: float = Field(1.0, ge=0, allow_inf_nan=False)
    # Idle workers look for queued jobs this often (with jitter). A new job wakes them at
    # once (PostgreSQL: NOTIFY; a SQLite file: a named pipe beside it): polling is the
    # fallback, for jobs whose wake-up no idle worker saw.
    poll_interval_seconds: float = Field(0.05, gt=0, allow_inf_nan=False)
    # On SIGTERM a worker checkpoints and hands its job back after the current epoch; if
    # that takes longer than this, it exits without writing and the job is resumed later.
    shutdown_grace_seconds: float = Field(20.0, ge=0, allow_inf_nan=False)
    # A running job's lease is renewed only while it progresses: an epoch (or a chunk of
    # them) trained, or its progress written, within this many seconds. A write that keeps
    # failing (a full disk, a lock held elsewhere) is retried, each failure logged with its
    # reason, for as long; then the worker gives the job up (see `leases.give_up`).
    stall_seconds: float = Field(300.0, gt=0, allow_inf_nan=False)
    # A job running longer than this since it first started ends `failed`; 0 = no limit.
    job_time_limit_seconds: float = Field(0.0, ge=0, allow_inf_nan=False)

    # `backprop serve` starts its workers this much nicer (os.nice) than the API, so
    # training takes the cores the API leaves idle and predictions keep their latency;
    # 0 runs them at the API's priority. `backprop worker` started alone keeps its own.
    worker_nice: int = Field(10, ge=0, le=19)

    model_cache_size: int = 32

    # `backprop serve` and `backprop worker` log one JSON object per line, or `text`;
    # `auto`: text when stderr is a terminal (a person runs it), JSON otherwise.
    log_format: LogFormatSetting = "auto"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"

    @field_validator("log_format", "sqlite_synchronous", mode="before")
    @classmethod
    def _lower_case(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_case(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("api_keys", mode="before")
    @classmethod
    def _hash_api_keys(cls, value: Any) -> Any:
        return parse_api_keys(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _leases_outlive_heartbeats(self) -> Self:
        # A lease that expires before its next heartbeat makes every running job look dead:
        # each would be reaped and taken over again and again.
        if self.heartbeat_seconds >= self.lease_timeout_seconds:
            raise ValueError(
                f"BACKPROP_HEARTBEAT_SECONDS ({self.heartbeat_seconds:g}) must be shorter than "
                f"BACKPROP_LEASE_TIMEOUT_SECONDS ({self.lease_timeout_seconds:g}), or every "
                "running job's lease expires between two heartbeats and it is reaped"
            )
        return self


def settings_error(error: ValidationError) -> str:
    """One line for refused settings, each named by its environment variable."""
    problems = []
    for problem in error.errors(include_url=False):
        context = problem.get("ctx", {})
        if "error" in context:  # a validator's own ValueError says it all
            problems.append(str(context["error"]))
        else:
            names = ", ".join(f"{ENV_PREFIX}{str(part).upper()}" for part in problem["loc"])
            problems.append(f"{names}: {problem['msg']}")
    return "; ".join(problems)


@lru_cache
def get_settings() -> Settings:
    """Return the process-wide settings, read from the environment once."""
    return Settings()
