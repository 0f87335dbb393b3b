"""The one-minute soak: `bench/soak.py --minutes 1 --check` as CI would run it, on a private
PostgreSQL cluster (restarted twice), with workers and an API replica killed meanwhile."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.pg_cluster import find_pg_bin

ROOT = Path(__file__).resolve().parents[2]
POSTGRES_URL_ENV = "BACKPROP_TEST_POSTGRES_URL"


def soak_database() -> str:
    """PostgreSQL where it is installed; CI (where PostgreSQL is required) fails without it."""
    if find_pg_bin() is not None:
        return "postgresql"
    if os.environ.get(POSTGRES_URL_ENV):
        pytest.fail(
            f"{POSTGRES_URL_ENV} is set but initdb/pg_ctl are not under /usr/lib/postgresql: "
            "the soak cannot start its private cluster",
            pytrace=False,
        )
    return "sqlite"


def test_one_minute_soak_loses_no_job_and_answers_no_5xx_outside_outages() -> None:
    database = soak_database()
    done = subprocess.run(
        [sys.executable, "bench/soak.py", "--minutes", "1", "--check", "--database", database],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=480,
    )
    report = done.stdout
    assert done.returncode == 0, report + done.stderr[-3000:]

    assert "- 0 jobs lost: met" in report
    assert "- 0 5xx outside database outages: met" in report
    assert "- 0 answers 500, outages included: met" in report
    jobs = re.search(r"- jobs: (\d+) created \(202\).*?(\d+) succeeded, 0 lost", report)
    assert jobs is not None, report
    assert int(jobs[1]) > 0
    # The faults happened: workers and the API replica were killed, the database restarted.
    faults = re.search(r"- faults: (\d+) worker kill -9 .*?, (\d+) API kill -9", report)
    assert faults is not None, report
    assert int(faults[1]) > 0 and int(faults[2]) > 0
    if database == "postgresql":
        restarts = re.search(r"(\d+) PostgreSQL restarts", report)
        assert restarts is not None and int(restarts[1]) >= 2, report
    # A row per minute with predict latencies and the API's RSS.
    assert re.search(r"^\| 1 \| [\d.]+ \| \d+ \| [\d.]+ \| [\d.]+ \|", report, re.MULTILINE), report
