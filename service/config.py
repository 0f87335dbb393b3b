"""Service settings, read from environment variables prefixed with BACKPROP_."""

from functools import lru_cache

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

    heartbeat_seconds: float = 5.0
    lease_timeout_seconds: float = 30.0
    max_attempts: int = 3
    # Idle workers look for queued jobs this often (with jitter): the pickup latency.
    poll_interval_seconds: float = 0.05

    model_cache_size: int = 32


@lru_cache
def get_settings() -> Settings:
    """Return the process-wide settings, read from the environment once."""
    return Settings()
