"""`backprop`: run the service (serve, worker, db) or train, predict and trace locally."""

import argparse
import csv
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import OperationalError
from tqdm import tqdm

from service.core import NetworkSpec, Parameters, RunSpec, SpecError, Trainer, trace_step
from service.core.spec import with_task_defaults
from service.formats import load_model
from service.tabular import read_csv

if TYPE_CHECKING:
    from service.config import Settings


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise SpecError(str(path), f"is not valid JSON ({error})") from None


def train(args: argparse.Namespace) -> None:
    """Train as a job on an uploaded CSV would: the same reader, task defaults and spec."""
    if args.label_column is not None and args.targets is not None:
        raise SpecError("--label-column", "give either --label-column or --targets, not both")
    try:
        table = read_csv(
            args.data, label_column=args.label_column, n_targets=args.targets, field=str(args.data)
        )
    except SpecError as error:
        # Named as the command line names them.
        flag = {"targets": "--targets", "label_column": "--label-column"}.get(error.field)
        if flag is None:
            raise
        raise SpecError(flag, error.message) from None
    labels = table.labels
    if labels is None:
        spec = RunSpec.from_dict(with_task_defaults(_read_json(args.spec), "regression", None))
        assert table.targets is not None
        trainer = Trainer(spec, table.inputs, table.targets, feature_names=table.feature_names)
    else:
        raw = with_task_defaults(_read_json(args.spec), "classification", labels.n_classes)
        spec = RunSpec.from_dict(raw)
        targets = labels.targets_for(spec.network)
        trainer = Trainer(
            spec,
            table.inputs,
            targets,
            classes=labels.classes,
            feature_names=table.feature_names,
        )
    bar = None if args.json else tqdm(total=spec.training.epochs, unit="epoch", file=sys.stderr)
    for record in trainer.run():
        if bar is None:
            print(json.dumps(record.to_dict()), flush=True)
        else:
            bar.set_postfix(loss=f"{record.loss:.6g}", refresh=False)
            bar.update(1)
    if bar is not None:
        bar.close()
    if trainer.stop_reason:
        print(trainer.stop_reason, file=sys.stderr)
    model = dataclasses.replace(trainer.model(), feature_names=table.feature_names)
    args.out.write_bytes(model.to_bytes())
    print(f"model written to {args.out}", file=sys.stderr)


def predict(args: argparse.Namespace) -> None:
    """One line per input row: the class name for a model trained on labels, else the
    outputs in the targets' own units; with `--json`, the body the service's predict
    route answers (`outputs`, and `probabilities`, `labels`, `classes` for classifiers)."""
    try:
        model = load_model(args.model.read_bytes())
    except SpecError as error:
        raise SpecError(str(args.model), error.message) from None
    inputs = read_csv(args.data, n_targets=0, field=str(args.data)).inputs
    if args.json:
        import orjson

        from service.api.predictions import prediction_body

        body = prediction_body(model, inputs)
        sys.stdout.buffer.write(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n")
        return
    outputs = model.predict(inputs)
    writer = csv.writer(sys.stdout)
    if model.classes is not None:
        for name in model.labels(outputs):
            writer.writerow([name])
        return
    for row in outputs:
        writer.writerow([repr(float(value)) for value in row])


def trace(args: argparse.Namespace) -> None:
    body = _read_json(args.trace)
    if not isinstance(body, dict):
        raise SpecError("trace", "must be a JSON object")
    network = NetworkSpec.from_dict(body.get("network", {}))
    parameters = Parameters.from_layers(network.layers, body.get("parameters"))
    result = trace_step(
        network,
        parameters,
        body.get("input"),
        body.get("target"),
        loss=body.get("loss", "mse"),
        learning_rate=body.get("learning_rate", 0.01),
        update_rule=body.get("update_rule", "standard"),
    )
    print(json.dumps(result, indent=2))


def load_settings(**overrides: Any) -> "Settings":
    """The settings from the environment and `overrides`; refused ones end the process with
    one line naming them, not a traceback."""
    from pydantic import ValidationError

    from service.config import Settings, settings_error

    try:
        return Settings(**overrides)
    except ValidationError as error:
        raise SystemExit(f"error: {settings_error(error)}") from None


def serve(args: argparse.Namespace) -> None:
    from service.api.server import serve as run_server

    overrides = {
        k: v
        for k, v in (("host", args.host), ("port", args.port), ("workers", args.workers))
        if v is not None
    }
    settings = load_settings(**overrides)
    if args.migrate:
        from service.db.migrate import upgrade

        upgrade(settings.database_url)
    run_server(settings)


def worker(args: argparse.Namespace) -> None:
    from service.jobs.worker import run_worker

    run_worker(load_settings())


def db_upgrade(args: argparse.Namespace) -> None:
    from service.db.migrate import current_revision, upgrade

    url = load_settings().database_url
    upgrade(url, args.revision)
    print(f"database at revision {current_revision(url)}", file=sys.stderr)


def db_backup(args: argparse.Namespace) -> None:
    from service.db.backup import BackupError, backup

    try:
        made = backup(load_settings().database_url, args.file)
    except BackupError as error:
        raise SystemExit(f"error: {error}") from None
    print(
        f"backup of revision {made.revision} written to {made.path} ({made.size_bytes} bytes)",
        file=sys.stderr,
    )


def db_restore(args: argparse.Namespace) -> None:
    from service.db.backup import BackupError, needs_upgrade, restore

    try:
        restored = restore(load_settings().database_url, args.file, force=args.force)
    except BackupError as error:
        raise SystemExit(f"error: {error}") from None
    print(f"restored {restored.path} (revision {restored.revision})", file=sys.stderr)
    if needs_upgrade(restored.revision):
        print("this version's schema is newer: run `backprop db upgrade` next", file=sys.stderr)


def health(args: argparse.Namespace) -> None:
    """Exit 0 if the service on this machine answers /health: the container's HEALTHCHECK."""
    import urllib.error
    import urllib.request

    url = args.url or f"http://127.0.0.1:{load_settings().port}/health"
    try:
        with urllib.request.urlopen(url, timeout=args.timeout) as response:
            status = response.status
    except (urllib.error.URLError, OSError) as error:
        sys.exit(f"unhealthy: {url}: {error}")
    if status != 200:
        sys.exit(f"unhealthy: {url} answered {status}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="backprop", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve_parser = commands.add_parser(
        "serve", help="start the API and BACKPROP_WORKERS worker processes"
    )
    serve_parser.add_argument("--host", help="address to listen on (BACKPROP_HOST)")
    serve_parser.add_argument("--port", type=int, help="port to listen on (BACKPROP_PORT)")
    serve_parser.add_argument("--workers", type=int, help="worker processes (BACKPROP_WORKERS)")
    serve_parser.add_argument(
        "--migrate",
        action="store_true",
        help="upgrade the database schema first (one process alone on its database)",
    )
    serve_parser.set_defaults(handler=serve)

    worker_parser = commands.add_parser(
        "worker", help="run one worker process that trains queued jobs"
    )
    worker_parser.set_defaults(handler=worker)

    health_parser = commands.add_parser(
        "health", help="exit 0 if the local service answers /health (for HEALTHCHECK)"
    )
    health_parser.add_argument("--url", help="default: http://127.0.0.1:$BACKPROP_PORT/health")
    health_parser.add_argument("--timeout", type=float, default=3.0, help="seconds")
    health_parser.set_defaults(handler=health)

    db_parser = commands.add_parser("db", help="database schema, backup and restore")
    db_commands = db_parser.add_subparsers(dest="db_command", required=True)
    upgrade_parser = db_commands.add_parser("upgrade", help="migrate BACKPROP_DATABASE_URL")
    upgrade_parser.add_argument("revision", nargs="?", default="head")
    upgrade_parser.set_defaults(handler=db_upgrade)
    backup_parser = db_commands.add_parser(
        "backup", help="write a consistent copy of the database to FILE, while it is in use"
    )
    backup_parser.add_argument("file", type=Path, help="a new file (never overwritten)")
    backup_parser.set_defaults(handler=db_backup)
    restore_parser = db_commands.add_parser(
        "restore", help="restore a backup into BACKPROP_DATABASE_URL (the service stopped)"
    )
    restore_parser.add_argument("file", type=Path, help="a file `backprop db backup` wrote")
    restore_parser.add_argument(
        "--force", action="store_true", help="replace a database that holds data"
    )
    restore_parser.set_defaults(handler=db_restore)

    train_parser = commands.add_parser("train", help="train a network locally on a CSV file")
    train_parser.add_argument("spec", type=Path, help='JSON {"network": {...}, "training": {...}}')
    train_parser.add_argument(
        "--data", type=Path, required=True, help="CSV with an optional header row"
    )
    train_parser.add_argument(
        "--targets", type=int, help="how many last columns are targets (default 1)"
    )
    train_parser.add_argument(
        "--label-column",
        metavar="NAME|INDEX",
        help="the column of class labels (header name or 0-based index), instead of --targets",
    )
    train_parser.add_argument(
        "--out", type=Path, default=Path("model.npz"), help="model file to write"
    )
    train_parser.add_argument("--json", action="store_true", help="print one JSON object per epoch")
    train_parser.set_defaults(handler=train)

    predict_parser = commands.add_parser("predict", help="print a model's outputs for CSV inputs")
    predict_parser.add_argument(
        "model",
        type=Path,
        help="a model file downloaded from the service (.backprop) or written by `backprop train`",
    )
    predict_parser.add_argument(
        "--data", type=Path, required=True, help="CSV of input rows, optional header row"
    )
    predict_parser.add_argument(
        "--json", action="store_true", help="print the body the service's predict route answers"
    )
    predict_parser.set_defaults(handler=predict)

    trace_parser = commands.add_parser("trace", help="print every value of one backprop step")
    trace_parser.add_argument(
        "trace", type=Path, help="JSON with network, parameters, input, target"
    )
    trace_parser.set_defaults(handler=trace)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    except SpecError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except OSError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except OperationalError as error:
        # Typically the database is not up yet: one line, not a traceback, and a restart.
        print(f"error: cannot use the database: {error.orig or error}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
