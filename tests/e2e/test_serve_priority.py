"""`backprop serve` runs its workers at a lower CPU priority than the API, as a real process."""

from pathlib import Path

from tests.helpers import running_service


def nice_value(pid: int) -> int:
    """The process's nice value: the 19th field of /proc/PID/stat (after the command)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[16])


def test_serve_starts_its_workers_nicer_than_the_api(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'backprop.db'}"
    with running_service(database_url, tmp_path / "serve.log", workers=2) as server:
        api = nice_value(server.process.pid)
        workers = [nice_value(pid) for pid in server.worker_pids()]

    assert len(workers) == 2
    # The default, BACKPROP_WORKER_NICE=10, capped at 19 if the API already runs nice.
    assert workers == [min(19, api + 10)] * 2


def test_worker_nice_zero_keeps_the_workers_at_the_api_priority(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'backprop.db'}"
    environment = {"BACKPROP_WORKER_NICE": "0"}
    with running_service(database_url, tmp_path / "serve.log", 1, environment) as server:
        api = nice_value(server.process.pid)
        workers = [nice_value(pid) for pid in server.worker_pids()]

    assert workers == [api]
