"""Settings: bounded timings, contradictory ones refused at start in one line."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from service.config import Settings, settings_error

REPOSITORY = Path(__file__).resolve().parents[1]


def refusal(**values: object) -> str:
    with pytest.raises(ValidationError) as refused:
        Settings(**values)  # type: ignore[arg-type]  # deliberately wrong values
    return settings_error(refused.value)


def test_a_heartbeat_not_shorter_than_the_lease_timeout_is_refused() -> None:
    assert Settings(heartbeat_seconds=29.9, lease_timeout_seconds=30).heartbeat_seconds == 29.9
    for heartbeat in (30, 45):
        message = refusal(heartbeat_seconds=heartbeat, lease_timeout_seconds=30)
        assert message.startswith(
            f"BACKPROP_HEARTBEAT_SECONDS ({heartbeat}) must be shorter than "
            "BACKPROP_LEASE_TIMEOUT_SECONDS (30)"
        )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("heartbeat_seconds", 0),
        ("lease_timeout_seconds", -1),
        ("poll_interval_seconds", 0),
        ("poll_interval_seconds", float("nan")),
        ("retry_backoff_seconds", float("inf")),
        ("shutdown_grace_seconds", -0.5),
        ("job_time_limit_seconds", -1),
        ("max_attempts", 0),
    ],
)
def test_timings_out_of_bounds_are_refused_by_their_variable(name: str, value: float) -> None:
    assert refusal(**{name: value}).startswith(f"BACKPROP_{name.upper()}: ")


def test_every_refused_setting_is_named_on_the_one_line() -> None:
    message = refusal(heartbeat_seconds=0, max_attempts=0)
    assert "\n" not in message
    assert "BACKPROP_HEARTBEAT_SECONDS: " in message and "BACKPROP_MAX_ATTEMPTS: " in message


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_the_commands_refuse_contradictory_settings_with_one_line_and_no_traceback(
    command: str, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "BACKPROP_DATABASE_URL": f"sqlite:///{tmp_path / 'backprop.db'}",
        "BACKPROP_HEARTBEAT_SECONDS": "40",
        "BACKPROP_LEASE_TIMEOUT_SECONDS": "30",
    }
    result = subprocess.run(
        [sys.executable, "-m", "service.cli", command],
        cwd=REPOSITORY,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode != 0
    assert result.stderr.splitlines() == [
        "error: BACKPROP_HEARTBEAT_SECONDS (40) must be shorter than "
        "BACKPROP_LEASE_TIMEOUT_SECONDS (30), or every running job's lease expires between "
        "two heartbeats and it is reaped"
    ]
    assert not (tmp_path / "backprop.db").exists()
