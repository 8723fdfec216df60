"""The ``deepsift`` command line: argument parsing, one config, one SparkSession, one library call."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from rich.console import Console
from rich.table import Table

from deepsift.config import Config, ConfigError, load_config

console = Console()


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        config = load_config(args.config)
        return args.handler(args, config)
    except ConfigError as error:
        console.print(f"[red]configuration error:[/red] {error}")
        return 2
    except Exception as error:
        if not isinstance(error, _user_errors()):
            raise
        console.print(f"[red]error:[/red] {error}")
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deepsift", description="Sift uploaded videos for deepfakes.")
    parser.add_argument("--config", help="YAML config file (default: $DEEPSIFT_CONFIG, else built-in defaults)")
    commands = parser.add_subparsers(dest="command", required=True)

    ingest = commands.add_parser("ingest", help="probe video files and record them in the videos table")
    ingest.add_argument("paths", nargs="+", help="folders, globs, files or filesystem URIs")
    ingest.add_argument("--date", type=date.fromisoformat, help="ingest date recorded on new rows (default: today, UTC)")
    ingest.set_defaults(handler=_ingest)

    extract = commands.add_parser("extract", help="sample frames and crop faces of every video not yet extracted")
    extract.set_defaults(handler=_extract)

    train = commands.add_parser("train", help="train a detector on extracted crops and register it (@challenger)")
    train.add_argument("--architecture", default="mobilenetv3_small_050")
    train.add_argument("--input-size", type=int, help="crop size in pixels (default: the architecture's)")
    train.add_argument("--epochs", type=int, default=3)
    train.add_argument("--batch-size", type=int, default=32)
    train.add_argument("--learning-rate", type=float, default=1e-3)
    train.add_argument("--max-steps", type=int, help="stop after this many optimiser steps")
    train.add_argument("--alias", default="challenger", help="alias the new version gets ('' for none)")
    _add_selection(train)
    train.set_defaults(handler=_train)

    evaluate = commands.add_parser("evaluate", help="measure a model version on labelled videos and record it")
    evaluate.add_argument("--model", default="@challenger", help="version number or @alias")
    _add_selection(evaluate)
    evaluate.set_defaults(handler=_evaluate)

    models = commands.add_parser("models", help="list, show, promote and import detector versions")
    model_commands = models.add_subparsers(dest="models_command", required=True)
    model_commands.add_parser("list", help="every registered version").set_defaults(handler=_models_list)
    show = model_commands.add_parser("show", help="one version: contract, metrics, aliases")
    show.add_argument("model", help="version number or @alias")
    show.set_defaults(handler=_models_show)
    promote = model_commands.add_parser("promote", help="move @champion to @challenger if it is at least as good")
    promote.add_argument("--metric", default="auc")
    promote.add_argument("--force", action="store_true", help="promote even if worse (recorded on the version)")
    promote.set_defaults(handler=_models_promote)
    imported = model_commands.add_parser("import", help="register a third-party checkpoint for a known architecture")
    imported.add_argument("checkpoint", type=Path)
    imported.add_argument("--architecture", required=True)
    imported.add_argument("--contract", type=Path, help="preprocessing contract JSON (default: the architecture's)")
    imported.add_argument("--model-card", type=Path, help="markdown describing the checkpoint's origin")
    imported.set_defaults(handler=_models_import)

    demo = commands.add_parser("demo", help="ingest and extract the demo clips (generated on first use)")
    demo.add_argument("--folder", type=Path, default=Path("demo"), help="where the demo clips are generated")
    demo.set_defaults(handler=_demo)
    return parser


def _add_selection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--since", type=date.fromisoformat, help="only videos ingested on or after this date")
    parser.add_argument("--until", type=date.fromisoformat, help="only videos ingested on or before this date")
    parser.add_argument("--uri-prefix", help="only videos with a URI under this prefix")
    parser.add_argument("--labels-table", help="table with video_id and label (1 fake, 0 real)")


def _selection(args: argparse.Namespace):
    from deepsift.stages.train import DataSelection

    return DataSelection(since=args.since, until=args.until, uri_prefix=args.uri_prefix, labels_table=args.labels_table)


def _registry(config: Config):
    from deepsift.registry.mlflow_models import DetectorRegistry

    return DetectorRegistry(config.mlflow, config.home)


def _session(config: Config):
    from deepsift.lake.session import build_spark_session

    with console.status("starting Spark"):
        return build_spark_session(config)


def _ingest(args: argparse.Namespace, config: Config) -> int:
    spark = _session(config)
    _run_ingest(spark, config, args.paths, args.date)
    return 0


def _extract(args: argparse.Namespace, config: Config) -> int:
    spark = _session(config)
    _run_extract(spark, config)
    return 0


def _train(args: argparse.Namespace, config: Config) -> int:
    from deepsift.detect.training import TrainingSettings
    from deepsift.stages.train import TrainRequest, train_and_register

    request = TrainRequest(
        architecture=args.architecture,
        input_size=args.input_size,
        settings=TrainingSettings(
            epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate, max_steps=args.max_steps
        ),
        selection=_selection(args),
        alias=args.alias or None,
    )
    spark = _session(config)
    with console.status("training"):
        outcome = train_and_register(spark, config, request)
    table = Table(title=f"trained {outcome.version.model_uri}", show_header=False)
    table.add_row("aliases", ", ".join(outcome.version.aliases) or "-")
    table.add_row("videos (train / held out)", f"{outcome.n_train_videos} / {outcome.n_validation_videos}")
    table.add_row("crops", str(outcome.n_crops))
    for name in ("auc", "ap", "eer", "ece"):
        table.add_row(f"held-out {name}", f"{outcome.report.metrics[name]:.4f}")
    table.add_row("seconds", f"{outcome.seconds:.1f}")
    console.print(table)
    return 0


def _evaluate(args: argparse.Namespace, config: Config) -> int:
    from deepsift.stages.train import evaluate_version

    version = _registry(config).resolve(args.model).version
    spark = _session(config)
    report = evaluate_version(spark, config, version, _selection(args))
    table = Table(title=f"version {version} on eval set {report.eval_set_id}", show_header=False)
    for name, value in sorted(report.metrics.items()):
        table.add_row(name, f"{value:.4f}")
    console.print(table)
    return 0


def _models_list(args: argparse.Namespace, config: Config) -> int:
    table = Table("version", "aliases", "architecture", "input", "auc", "eval set")
    for info in _registry(config).list_versions():
        auc = info.metrics.get("auc")
        table.add_row(
            str(info.version), ", ".join(info.aliases), info.contract.architecture, str(info.contract.input_size),
            f"{auc:.4f}" if auc is not None else "-", info.eval_set_id or "-",
        )
    console.print(table)
    return 0


def _models_show(args: argparse.Namespace, config: Config) -> int:
    info = _registry(config).resolve(args.model)
    console.print(f"[bold]{info.model_uri}[/bold] aliases: {', '.join(info.aliases) or '-'} run: {info.run_id}")
    console.print_json(info.contract.to_json())
    console.print_json(data=info.metrics)
    return 0


def _models_promote(args: argparse.Namespace, config: Config) -> int:
    decision = _registry(config).promote(metric=args.metric, force=args.force)
    console.print(("promoted: " if decision.promoted else "not promoted: ") + decision.reason)
    return 0 if decision.promoted else 3


def _models_import(args: argparse.Namespace, config: Config) -> int:
    from deepsift.detect.architectures import architecture_spec
    from deepsift.detect.contract import PreprocessContract

    contract = (
        PreprocessContract.from_json(args.contract.read_text())
        if args.contract
        else architecture_spec(args.architecture).default_contract()
    )
    card = args.model_card.read_text() if args.model_card else f"# Imported checkpoint {args.checkpoint.name}\n"
    info = _registry(config).import_checkpoint(args.checkpoint, args.architecture, contract, card)
    console.print(f"registered {info.model_uri} from {args.checkpoint}")
    return 0


def _demo(args: argparse.Namespace, config: Config) -> int:
    from deepsift.demo import ensure_demo_clips
    from deepsift.registry.errors import ModelNotFoundError
    from deepsift.stages.train import config_for_contract, ensure_champion, reference_contract

    with console.status(f"generating demo clips in {args.folder}"):
        clips = ensure_demo_clips(args.folder)
    console.print(f"demo clips: {len(clips)} in {args.folder}")
    spark = _session(config)
    _run_ingest(spark, config, [str(args.folder)], None)
    try:
        contract = _registry(config).resolve(config.mlflow.alias).contract
    except ModelNotFoundError:
        contract = reference_contract(config)
    _run_extract(spark, config_for_contract(config, contract))
    with console.status(f"resolving @{config.mlflow.alias} (training the reference detector if there is none)"):
        champion, trained = ensure_champion(spark, config)
    note = f" (trained now in {trained.seconds:.0f} s)" if trained else ""
    console.print(f"detector: {champion.model_uri} @{config.mlflow.alias}{note}")
    _print_where(config)
    return 0


def _run_ingest(spark, config: Config, paths: Sequence[str], ingest_date: date | None) -> None:
    from deepsift.progress import spark_progress
    from deepsift.stages.ingest import ingest

    with spark_progress(spark, "ingest"):
        summary = ingest(spark, config, paths, ingest_date)
    table = Table(title="ingest", show_header=False)
    table.add_row("files listed", str(summary.files))
    table.add_row("new videos", str(summary.new_videos))
    table.add_row("videos in table", str(summary.videos_total))
    for reason, count in sorted(summary.probe_errors.items()):
        table.add_row(f"probe error: {reason}", str(count))
    for missing in summary.missing_inputs:
        table.add_row("missing input", missing)
    table.add_row("seconds", f"{summary.seconds:.1f}")
    console.print(table)


def _run_extract(spark, config: Config) -> None:
    from deepsift.progress import spark_progress
    from deepsift.stages.extract import extract_pending

    with spark_progress(spark, "extract"):
        summary = extract_pending(spark, config)
    table = Table(title=f"extract ({summary.preprocess_version}, {summary.face_detector})", show_header=False)
    table.add_row("videos", str(summary.videos))
    table.add_row("ok", str(summary.ok))
    for reason, count in sorted(summary.errors.items()):
        table.add_row(f"error: {reason}", str(count))
    table.add_row("videos with faces", str(summary.videos_with_faces))
    table.add_row("faces", str(summary.faces))
    table.add_row("decode seconds (sum)", f"{summary.decode_s:.1f}")
    table.add_row("face seconds (sum)", f"{summary.faces_s:.1f}")
    table.add_row("wall seconds", f"{summary.seconds:.1f}")
    console.print(table)


def _print_where(config: Config) -> None:
    console.print(f"tables: schema [bold]{config.lake.schema_name}[/bold], warehouse {config.warehouse_dir}")
    console.print(
        f"query: [bold]spark-sql[/bold] over the same metastore, e.g. "
        f"SELECT status, reason, count(*) FROM {config.lake.schema_name}.extractions GROUP BY 1, 2"
    )


def _user_errors() -> tuple[type[Exception], ...]:
    """Failures a user can fix from the message alone; imported late to keep ``--help`` fast."""
    from deepsift.lake.jars import JarDownloadError
    from deepsift.detect.architectures import UnknownArchitectureError
    from deepsift.lake.session import JavaNotFoundError
    from deepsift.registry.errors import RegistryError
    from deepsift.stages.ingest import NoInputError

    return (
        JarDownloadError, JavaNotFoundError, NoInputError, FileNotFoundError, RegistryError, UnknownArchitectureError,
    )

if __name__ == "__main__":
    sys.exit(main())
