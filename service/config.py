"""Service settings, read from environment variables prefixed with BACKPROP_."""

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every tunable of the service; `BACKPROP_DATABASE_URL` sets `database_url`, and so on."""

    model_config = SettingsConfigDict(env_prefix="BACKPROP_", extra="ignore")

    database_url: str = "sqlite:///./backprop.db"
    workers: int = 1
    host: str = "127.0.0.1"
    port: int = 8000

    max_body_bytes: int = 10 * 1024 * 1024
    max_dataset_rows: int = 100_000
    max_features: int = 1_000
    max_parameters: int = 5_000_000
    max_epochs: int = 100_000

    # A running job's worker refreshes its lease this often (and learns of a cancel); every
    # worker also re-queues jobs whose lease is older than `lease_timeout_seconds` this often.
    heartbeat_seconds: float = 5.0
    lease_timeout_seconds: float = 30.0
    # A job whose worker died this many times ends `failed`; before that it is retried
    # after min(60, retry_backoff_seconds * 2**attempts) seconds.
    max_attempts: int = 3
    retry_backoff_seconds: float = Field(1.0, ge=0)
    # Idle workers look for queued jobs this often (with jitter): the pickup latency on
    # SQLite. On PostgreSQL they are woken by NOTIFY at once; polling is the fallback.
    poll_interval_seconds: float = 0.05
    # On SIGTERM a worker checkpoints and hands its job back after the current epoch; if
    # that takes longer than this, it exits without writing and the job is resumed later.
    shutdown_grace_seconds: float = Field(20.0, ge=0)
    # A job running longer than this since it first started ends `failed`; 0 = no limit.
    job_time_limit_seconds: float = Field(0.0, ge=0)

    model_cache_size: int = 32


@lru_cache
def get_settings() -> Settings:
    """Return the process-wide settings, read from the environment once."""
    return Settings()
