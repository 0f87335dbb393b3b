"""The commands the container image runs: `serve --migrate` (its default), `health` (its
HEALTHCHECK) and `db upgrade` before the database is up (the compose stack's first seconds)."""

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx2

from tests.helpers import backprop_command, free_port


def test_serve_migrate_starts_on_an_empty_database_and_health_follows_it(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "BACKPROP_DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.db'}",
        "BACKPROP_PORT": str(port),
    }
    log = tmp_path / "serve.log"
    with log.open("w") as sink:
        process = subprocess.Popen(
            backprop_command("serve", "--migrate", "--workers", "0"),
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while (
            subprocess.run(backprop_command("health"), env=env, capture_output=True).returncode != 0
        ):
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        assert httpx2.get(f"http://127.0.0.1:{port}/ready").json()["status"] == "ready"
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(30)

    stopped = subprocess.run(backprop_command("health"), env=env, capture_output=True, text=True)
    assert stopped.returncode == 1
    assert stopped.stderr.startswith(f"unhealthy: http://127.0.0.1:{port}/health")


def test_db_upgrade_before_the_database_is_up_fails_in_one_line() -> None:
    env = {
        **os.environ,
        "BACKPROP_DATABASE_URL": f"postgresql+psycopg://backprop@127.0.0.1:{free_port()}/none",
    }
    result = subprocess.run(
        backprop_command("db", "upgrade"), env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: cannot use the database:"), result.stderr
    assert "Traceback" not in result.stderr
