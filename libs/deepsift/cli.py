"""The ``deepsift`` command line: argument parsing, one config, one SparkSession, one library call."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from deepsift.config import Config, ConfigError, load_config
from deepsift.errors import DeepsiftError
from deepsift.logs import configure_logging
from deepsift.progress import show_steps

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from deepsift.registry.mlflow_models import DetectorRegistry, ModelVersionInfo
    from deepsift.sql.analyst import QueryResult
    from deepsift.stages.scan import ScanOutcome, ScanRequest
    from deepsift.stages.train import DataSelection, TrainOutcome

    Commands = argparse._SubParsersAction[argparse.ArgumentParser]  # noqa: SLF001 - argparse names it no other way
    """What ``add_subparsers`` returns: each ``_add_*_commands`` function adds its commands to it."""

console = Console()
errors = Console(stderr=True, soft_wrap=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    configure_logging()
    # MLflow sets its loggers' level from MLFLOW_LOGGING_LEVEL (default INFO) when it is imported, later
    # than this; the setLevel covers a process that imported it already.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    from deepsift.lake.session import spark_scope

    try:
        config = load_config(args.config, overrides={"spark.verbose_logs": True} if args.verbose else None)
        with spark_scope():  # returns once the command's JVM has exited and let go of the metastore
            return args.handler(args, config)
    except KeyboardInterrupt:
        errors.print("[red]interrupted[/red]")
        return 130
    except ConfigError as error:  # a DeepsiftError too, told apart by its own words and exit status
        errors.print(f"[red]configuration error:[/red] {error}")
        return 2
    except (DeepsiftError, FileNotFoundError) as error:  # anything else is a bug: its traceback shows
        errors.print(f"[red]error:[/red] {escape(str(error))}")
        return 1


def _parser() -> argparse.ArgumentParser:
    """The whole command line: global options, then each group of commands from a function of its own."""
    parser = argparse.ArgumentParser(prog="deepsift", description="Sift uploaded videos for deepfakes.")
    parser.add_argument("--config", help="YAML config file (default: $DEEPSIFT_CONFIG, else built-in defaults)")
    parser.add_argument(
        "--verbose", action="store_true",
        help="Spark's own console log, not only what a user can act on (spark.verbose_logs)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    _add_pipeline_commands(commands)
    _add_training_commands(commands)
    _add_models_commands(commands)
    _add_review_commands(commands)
    _add_report_command(commands)
    _add_sql_command(commands)
    _add_server_commands(commands)
    _add_demo_command(commands)
    _add_stored_data_commands(commands)
    return parser


def _add_pipeline_commands(commands: Commands) -> None:
    """The pipeline's steps a user runs by hand: ingest, extract, scan and rescore."""
    ingest = commands.add_parser("ingest", help="probe video files and record them in the videos table")
    ingest.add_argument("paths", nargs="+", help="folders, globs, files or filesystem URIs")
    ingest.add_argument("--date", type=date.fromisoformat, help="ingest date recorded on new rows (default: today, UTC)")
    ingest.set_defaults(handler=_ingest)

    extract = commands.add_parser("extract", help="sample frames and crop faces of every video not yet extracted")
    extract.set_defaults(handler=_extract)

    scan = commands.add_parser("scan", help="ingest PATHs, then judge every video the model has not judged yet")
    scan.add_argument("paths", nargs="*", help="folders, globs, files or URIs to ingest first (none: scan what is ingested)")
    scan.add_argument("--date", type=date.fromisoformat, help="scan date (default: today, UTC)")
    scan.add_argument("--model", help="version number or @alias (default: @champion)")
    scan.add_argument("--trigger", default="cli", help="recorded in scan_runs.trigger (the DAGs pass their run id)")
    scan.set_defaults(handler=_scan)

    rescore = commands.add_parser("rescore", help="score cached crops with another model version, without decoding")
    rescore.add_argument("--model-version", required=True, help="version number or @alias")
    rescore.add_argument("--since", type=date.fromisoformat, help="only videos ingested on or after this date")
    rescore.add_argument("--date", type=date.fromisoformat, help="scan date recorded on the rows (default: today)")
    rescore.set_defaults(handler=_rescore)


def _add_training_commands(commands: Commands) -> None:
    """Making and measuring detectors: train, starter and evaluate."""
    train = commands.add_parser(
        "train", help="train a detector on real faces (the faces table, a corpus, or both) and register it (@challenger)"
    )
    _add_training(train)
    train.add_argument("--corpus", type=Path, help="also train on a folder of real faces with a MANIFEST.csv")
    train.add_argument("--no-platform-crops", action="store_true", help="train on the corpus alone, not the faces table")
    train.add_argument("--alias", default="challenger", help="alias the new version gets ('' for none)")
    _add_selection(train)
    train.set_defaults(handler=_train)

    starter = commands.add_parser(
        "starter", help="build the starter detector from a corpus of real faces (no Spark) and register it"
    )
    starter.add_argument("--corpus", type=Path, required=True, help="folder of real faces with a MANIFEST.csv")
    starter.add_argument("--quick", action="store_true", help="the cut-down recipe make scan uses (160 px, at most 4 epochs)")
    starter.add_argument(
        "--alias", help="alias the new version gets (default: champion when none exists, else challenger)"
    )
    starter.set_defaults(handler=_starter)

    evaluate = commands.add_parser("evaluate", help="measure a model version on labelled videos and record it")
    evaluate.add_argument("--model", default="@challenger", help="version number or @alias")
    _add_selection(evaluate)
    evaluate.set_defaults(handler=_evaluate)


def _add_models_commands(commands: Commands) -> None:
    """``deepsift models list | show | promote | import``: the registered detector versions."""
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
    imported.add_argument(
        "--option", action="append", default=[], metavar="NAME=VALUE",
        help="change an extraction option of the contract (frames_per_video, detect_max_side, "
             "keyframe_min_coverage, reference_frames_only); repeatable",
    )
    imported.set_defaults(handler=_models_import)


def _add_review_commands(commands: Commands) -> None:
    """``deepsift review export | import``: the moderation queue as CSV, out and back."""
    review = commands.add_parser("review", help="the moderation queue: export pending items, import decisions")
    review_commands = review.add_subparsers(dest="review_command", required=True)
    export = review_commands.add_parser("export", help="pending items as CSV, highest priority first")
    export.add_argument("--out", type=Path, help="CSV file to write (default: standard output)")
    export.add_argument("--limit", type=_positive_int, help="at most this many items")
    export.set_defaults(handler=_review_export)
    decisions = review_commands.add_parser("import", help="apply a filled-in export: every row valid, or nothing")
    decisions.add_argument("file", type=Path, help="CSV with decision (confirmed_fake, confirmed_real, dismissed)")
    decisions.set_defaults(handler=_review_import)


def _add_report_command(commands: Commands) -> None:
    """``deepsift report``: one scan date's moderation report."""
    report = commands.add_parser("report", help="write one scan date's moderation report (one HTML file) and record it")
    report.add_argument("--date", type=date.fromisoformat, help="scan date to report (default: today, UTC)")
    report.add_argument("--out", type=Path, help="HTML file to write (default: <home>/reports/<date>.html)")
    report.add_argument(
        "--max-flagged", type=_positive_int, help="list at most this many flagged videos, count the rest (default: 200)"
    )
    report.add_argument(
        "--max-listed", type=_positive_int, help="list at most this many of the day's videos by path (default: 1000)"
    )
    report.set_defaults(handler=_report)


def _add_sql_command(commands: Commands) -> None:
    """``deepsift sql``: one read-only statement or saved query, printed as a table, CSV or JSON."""
    sql = commands.add_parser(
        "sql", help="run one read-only SQL statement or saved query over the tables and views",
        description="Only queries run: SELECT, WITH, VALUES, SHOW, DESCRIBE, EXPLAIN, USE and SET; writes are refused. "
        "Tables and views are found without a schema (the config's schema is current).",
    )
    sql.add_argument("statement", nargs="?", help='e.g. "SELECT verdict, count(*) FROM latest_verdicts GROUP BY verdict"')
    sql.add_argument("--saved", metavar="NAME", help="run a saved query (--list shows them)")
    sql.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="bind :NAME (repeatable)")
    sql.add_argument("--list", action="store_true", help="list the saved queries and their parameters")
    sql.add_argument("--format", choices=("table", "csv", "json"), default="table")
    sql.add_argument("--max-rows", type=_positive_int, default=10_000, help="rows to print at most (default: 10000)")
    sql.set_defaults(handler=_sql)


def _add_server_commands(commands: Commands) -> None:
    """The foreground servers on 127.0.0.1: ``sql-server`` (JDBC/ODBC) and ``mlflow-ui``."""
    sql_server = commands.add_parser(
        "sql-server", help="serve the tables read-only over JDBC/ODBC (Spark Thrift server) on 127.0.0.1 until Ctrl-C",
        description="Runs the Spark Thrift server in the foreground over this home's warehouse and metastore, "
        "read-only. Embedded Derby admits one JVM at a time: while it runs, no scan, `deepsift sql` or other "
        "Spark job can use this home, and it cannot start while one of them runs.",
    )
    sql_server.add_argument("--port", type=_positive_int, default=10000, help="TCP port (default: 10000)")
    sql_server.set_defaults(handler=_sql_server)

    mlflow_ui = commands.add_parser(
        "mlflow-ui", help="serve MLflow's UI (runs, metrics, registered detectors, aliases) on 127.0.0.1 until Ctrl-C",
        description="Runs `mlflow server` in the foreground over the MLflow store the config points at "
        "(the embedded one under the home by default), bound to 127.0.0.1.",
    )
    mlflow_ui.add_argument("--port", type=_positive_int, default=5000, help="TCP port (default: 5000)")
    mlflow_ui.set_defaults(handler=_mlflow_ui)


def _add_demo_command(commands: Commands) -> None:
    """``deepsift demo``: the whole job on generated clips, for a fresh clone."""
    demo = commands.add_parser(
        "demo", help="the whole job on generated demo clips: ingest, a detector if none, scan, verdicts"
    )
    demo.add_argument("--folder", type=Path, default=Path("demo"), help="where the demo clips are generated")
    demo.add_argument(
        "--corpus", type=Path, help="real faces to train the quick starter detector on when no champion exists"
    )
    demo.set_defaults(handler=_demo)


def _add_stored_data_commands(commands: Commands) -> None:
    """Commands over what the lake already holds: ``reaggregate`` (a version's verdicts replayed under
    another rule, from stored scores) and ``maintain`` (the weekly table maintenance, the same job the
    maintenance DAG submits)."""
    replay = commands.add_parser(
        "reaggregate", help="print a version's verdicts replayed under another aggregation rule from stored face scores"
    )
    replay.add_argument("--model", required=True, help="version number or @alias")
    replay.add_argument("--aggregation", required=True, type=_aggregation_rule, help="e.g. max, mean, topk_mean, confident")
    replay.add_argument("--date", type=date.fromisoformat, help="only that scan date's scores (default: each video's latest)")
    replay.set_defaults(handler=_reaggregate)

    maintain = commands.add_parser(
        "maintain", help="OPTIMIZE, then VACUUM, every deepsift table (the weekly maintenance job)"
    )
    maintain.add_argument(
        "--retention-hours", type=int, help="hours of table history VACUUM keeps (default: 168, Delta's minimum)"
    )
    maintain.set_defaults(handler=_maintain)


def _aggregation_rule(text: str) -> str:
    """An aggregation rule's name, checked while arguments are parsed (never for ``--help``)."""
    from deepsift.verdicts.aggregation import UnknownAggregationError, check_aggregation

    try:
        return check_aggregation(text)
    except UnknownAggregationError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _reaggregate(args: argparse.Namespace, config: Config) -> int:
    """The replayed verdicts, one row per video, printed as ``deepsift sql`` prints rows; nothing is written."""
    from deepsift.sql.analyst import QueryResult
    from deepsift.stages.verdicts import reaggregate_version

    frame = reaggregate_version(_session(config), config, args.model, args.aggregation, args.date)
    rows = [tuple(row) for row in frame.collect()]
    console.print(_sql_table(QueryResult(list(frame.columns), rows, truncated=False)))
    return 0


def _add_training(parser: argparse.ArgumentParser) -> None:
    """Training flags; those left out take ``TrainingSettings``' defaults, the starter recipe."""
    parser.add_argument("--architecture", help="default: the starter detector's architecture")
    parser.add_argument("--input-size", type=int, help="crop size in pixels (default: the architecture's)")
    parser.add_argument("--epochs", type=int, help="the most epochs; early stopping may end sooner")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--learning-rate", type=float)
    parser.add_argument("--max-steps", type=int, help="stop after this many optimiser steps")
    parser.add_argument(
        "--init", choices=("imagenet", "random"), default="imagenet", help="start from ImageNet weights or random ones"
    )
    parser.add_argument(
        "--mask", choices=("landmarks", "box"), default="landmarks", help="pseudo-fake blend region (box: the ablation)"
    )


def _add_selection(parser: argparse.ArgumentParser) -> None:
    """The flags that narrow which ingested videos a command trains or evaluates on (``DataSelection``)."""
    parser.add_argument("--since", type=date.fromisoformat, help="only videos ingested on or after this date")
    parser.add_argument("--until", type=date.fromisoformat, help="only videos ingested on or before this date")
    parser.add_argument("--uri-prefix", help="only videos with a URI under this prefix")
    parser.add_argument("--labels-table", help="table with video_id and label (1 fake, 0 real)")


def _selection(args: argparse.Namespace) -> DataSelection:
    from deepsift.stages.train import DataSelection

    return DataSelection(since=args.since, until=args.until, uri_prefix=args.uri_prefix, labels_table=args.labels_table)


def _registry(config: Config) -> DetectorRegistry:
    from deepsift.registry.mlflow_models import DetectorRegistry

    return DetectorRegistry(config.mlflow, config.home)


def _session(config: Config) -> SparkSession:
    from deepsift.lake.session import build_spark_session

    with console.status("starting Spark"):
        return build_spark_session(config)


Prepared = TypeVar("Prepared")


def _session_beside(config: Config, prepare: Callable[[], Prepared]) -> tuple[SparkSession, Prepared]:
    """Start Spark while ``prepare`` runs on a thread: the command's driver work that needs no JVM (loading
    MLflow, opening its store, resolving a model), on the core that the JVM's start leaves idle. An error
    of Spark's start is raised rather than one of ``prepare``."""
    with ThreadPoolExecutor(max_workers=1) as background:
        prepared = background.submit(prepare)
        spark = _session(config)
        return spark, prepared.result()


def _ingest(args: argparse.Namespace, config: Config) -> int:
    spark = _session(config)
    _run_ingest(spark, config, args.paths, args.date)
    return 0


def _extract(args: argparse.Namespace, config: Config) -> int:
    spark = _session(config)
    _run_extract(spark, config)
    return 0


def _train(args: argparse.Namespace, config: Config) -> int:
    from deepsift.detect.architectures import DEFAULT_ARCHITECTURE
    from deepsift.detect.training import TrainingSettings
    from deepsift.stages.train import TrainRequest, train_and_register

    request = TrainRequest(
        architecture=args.architecture or DEFAULT_ARCHITECTURE,
        input_size=args.input_size,
        settings=TrainingSettings(
            **{
                name: value
                for name, value in (
                    ("epochs", args.epochs), ("batch_size", args.batch_size), ("learning_rate", args.learning_rate)
                )
                if value is not None
            },
            max_steps=args.max_steps,
            pretrained=args.init == "imagenet",
            mask=args.mask,
        ),
        selection=_selection(args),
        corpus=args.corpus,
        platform_crops=not args.no_platform_crops,
        alias=args.alias or None,
    )
    spark = None if args.no_platform_crops else _session(config)
    with console.status("training"):
        outcome = train_and_register(spark, config, request)
    _print_training(outcome)
    return 0


def _starter(args: argparse.Namespace, config: Config) -> int:
    from dataclasses import replace

    from deepsift.registry.errors import ModelNotFoundError
    from deepsift.stages.train import QUICK_STARTER_DETECTOR, STARTER_DETECTOR, train_and_register

    alias = args.alias
    if alias is None:
        try:
            _registry(config).resolve(config.mlflow.alias)
            alias = "challenger"
        except ModelNotFoundError:
            alias = config.mlflow.alias
    request = replace(QUICK_STARTER_DETECTOR if args.quick else STARTER_DETECTOR, corpus=args.corpus, alias=alias)
    with console.status(f"training the {'quick ' if args.quick else ''}starter detector on {args.corpus}"):
        outcome = train_and_register(None, config, request)
    _print_training(outcome)
    return 0


def _print_training(outcome: TrainOutcome) -> None:
    table = Table(title=f"trained {outcome.version.model_uri}", show_header=False)
    table.add_row("aliases", ", ".join(outcome.version.aliases) or "-")
    table.add_row("people or videos (train / held out)", f"{outcome.n_train_groups} / {outcome.n_validation_groups}")
    table.add_row("face crops", str(outcome.n_crops))
    for name in ("auc", "ap", "eer", "fpr_suspicious", "fpr_manipulated"):
        table.add_row(f"held-out {name}", f"{outcome.report.metrics[name]:.4f}")
    thresholds = outcome.report.thresholds
    table.add_row("thresholds", f"suspicious {thresholds.suspicious:.4f}, manipulated {thresholds.manipulated:.4f}")
    table.add_row("seconds", f"{outcome.seconds:.1f}")
    console.print(table)


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


def _maintain(args: argparse.Namespace, config: Config) -> int:
    from deepsift.orchestration.maintenance import run_maintenance

    return run_maintenance(config, args.retention_hours)


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
    from deepsift.detect.contract import PreprocessContract, contract_with_options

    contract = (
        PreprocessContract.from_json(args.contract.read_text())
        if args.contract
        else architecture_spec(args.architecture).default_contract()
    )
    contract = contract_with_options(contract, args.option)
    card = args.model_card.read_text() if args.model_card else f"# Imported checkpoint {args.checkpoint.name}\n"
    info = _registry(config).import_checkpoint(args.checkpoint, args.architecture, contract, card)
    console.print(f"registered {info.model_uri} from {args.checkpoint}")
    return 0


def _scan(args: argparse.Namespace, config: Config) -> int:
    spark, (request, model) = _session_beside(config, lambda: _prepare_scan(args, config))
    from deepsift.stages.scan import run_scan

    with show_steps("scan"):
        outcome = run_scan(spark, config, request, model)
    _print_scan(config, outcome)
    return 0


def _prepare_scan(args: argparse.Namespace, config: Config) -> tuple[ScanRequest, ModelVersionInfo]:
    """The scan's request and the exact model version it names."""
    from deepsift.stages.scan import ScanRequest, scan_model

    request = ScanRequest(scan_date=args.date or _today(), inputs=args.paths, model=args.model, trigger=args.trigger)
    return request, scan_model(config, request)


def _rescore(args: argparse.Namespace, config: Config) -> int:
    spark, info = _session_beside(config, lambda: _registry(config).resolve(args.model_version))
    from deepsift.stages.scan import rescore

    with show_steps("rescore"):
        outcome = rescore(spark, config, args.model_version, args.date or _today(), args.since, info)
    _print_scan(config, outcome)
    return 0


def _report(args: argparse.Namespace, config: Config) -> int:
    from deepsift.reports.daily import generate_daily_report, report_path
    from deepsift.reports.data import ReportSettings

    limits = {"max_flagged": args.max_flagged, "max_listed": args.max_listed}
    settings = ReportSettings(**{name: value for name, value in limits.items() if value is not None})
    report_date = args.date or _today()
    out = report_path(config, report_date, args.out)
    spark, _ = _session_beside(config, lambda: _registry(config))  # MLflow keeps its store open for the report's reads
    with show_steps("report"):
        outcome = generate_daily_report(spark, config, report_date, out, settings)
    data = outcome.data
    if data.scanned:
        counts = ", ".join(f"{verdict} {count}" for verdict, count in sorted(data.counts_by_verdict.items())) or "none"
        console.print(
            f"{data.videos} videos judged on {report_date} ({counts}); "
            f"{data.flagged_total} flagged, {len(data.flagged)} listed"
        )
    else:
        console.print(f"no scan ran on {report_date}; the report says so")
    console.print(f"report: {escape(str(outcome.path))} ({outcome.size_bytes / 1024:.0f} KiB)")
    return 0


def _demo(args: argparse.Namespace, config: Config) -> int:
    from deepsift.demo import ensure_demo_clips
    from deepsift.media.sources import to_uri
    from deepsift.stages.scan import ScanRequest, run_scan
    from deepsift.stages.train import DataSelection, ensure_champion

    with console.status(f"generating demo clips in {args.folder}"):
        clips = ensure_demo_clips(args.folder)
    console.print(f"demo clips: {len(clips)} in {args.folder} (authentic/ and manipulated/)")
    spark = _session(config)
    _run_ingest(spark, config, [str(args.folder)], None)
    authentic = DataSelection(uri_prefix=to_uri(str(args.folder / "authentic")))
    kind = "the quick starter detector" if args.corpus else "the reference placeholder detector"
    with console.status(f"resolving @{config.mlflow.alias} (training {kind} if there is none)"):
        champion, trained = ensure_champion(spark, config, args.corpus, authentic)
    if trained:
        console.print(f"trained {kind} {champion.model_uri} in {trained.seconds:.0f} s")
    with show_steps("scan"):
        outcome = run_scan(spark, config, ScanRequest(scan_date=_today(), trigger="demo"))
    _print_scan(config, outcome)
    return 0


def _review_export(args: argparse.Namespace, config: Config) -> int:
    from deepsift.review.decisions import export_pending

    spark = _session(config)
    if args.out is None:
        written = export_pending(spark, config, sys.stdout, args.limit)
        errors.print(f"exported {written} pending items")
        return 0
    with args.out.open("w", encoding="utf-8", newline="") as handle:
        written = export_pending(spark, config, handle, args.limit)
    console.print(f"exported {written} pending items to {args.out}")
    return 0


def _review_import(args: argparse.Namespace, config: Config) -> int:
    from deepsift.review.decisions import import_decisions, read_decision_file

    decisions = read_decision_file(args.file)
    spark = _session(config)
    summary = import_decisions(spark, config, decisions)
    counts = ", ".join(f"{name} {count}" for name, count in sorted(summary.by_decision.items())) or "none"
    console.print(f"imported {summary.decided} decisions ({counts}); {summary.skipped} rows without a decision skipped")
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, given {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, given {value}")
    return value


def _sql(args: argparse.Namespace, config: Config) -> int:
    from deepsift.sql import analyst

    if args.list:
        table = Table("name", "parameters", "description", title="saved queries: deepsift sql --saved NAME")
        for query in analyst.saved_queries().values():
            listed = "\n".join(f":{name}  {text}" for name, text in query.parameters.items())
            table.add_row(query.name, escape(listed) or "-", escape(query.description))
        console.print(table)
        return 0
    if bool(args.statement) == bool(args.saved):
        errors.print("[red]error:[/red] give one SQL statement or --saved NAME (--list shows the saved queries)")
        return 2
    parameters = analyst.parse_parameters(args.param)
    statement, bound = analyst.bind_saved(args.saved, parameters) if args.saved else (args.statement, parameters)
    spark = _session(config)
    result = analyst.run_statement(spark, config.lake.schema_name, statement, bound, args.max_rows)
    if args.format == "csv":
        sys.stdout.write(analyst.to_csv(result))
    elif args.format == "json":
        sys.stdout.write(analyst.to_json(result) + "\n")
    else:
        console.print(_sql_table(result))
    if result.truncated:
        errors.print(f"only the first {len(result.rows)} rows are shown; --max-rows raises the limit")
    return 0


def _sql_table(result: QueryResult) -> Table:
    """Rows as an aligned table; cells are plain text (never rich markup), numbers right-aligned."""
    table = Table(caption=f"{len(result.rows)} rows")
    for index, name in enumerate(result.columns):
        values = [row[index] for row in result.rows if row[index] is not None]
        numeric = bool(values) and all(isinstance(value, (int, float)) for value in values)
        table.add_column(Text(name), justify="right" if numeric else "left")
    for row in result.rows:
        table.add_row(*(Text(_sql_cell(value)) for value in row))
    return table


def _sql_cell(value: Any) -> str:
    from deepsift.sql.analyst import plain

    if value is None:
        return "NULL"
    if isinstance(value, float):
        return f"{value:.6g}"
    converted = plain(value)
    return converted if isinstance(converted, str) else json.dumps(converted, ensure_ascii=False)


def _sql_server(args: argparse.Namespace, config: Config) -> int:
    from deepsift.sql.server import serve

    console.print(f"starting the read-only JDBC server on 127.0.0.1:{args.port}")
    return serve(config, args.port, lambda url: console.print(f"[bold]ready:[/bold] {url} (read-only; Ctrl-C stops it)"))


def _mlflow_ui(args: argparse.Namespace, config: Config) -> int:
    from deepsift.registry.mlflow_ui import serve_ui

    console.print(f"starting MLflow's UI on 127.0.0.1:{args.port}; its log follows")
    return serve_ui(config, args.port, lambda url: console.print(f"[bold]ready:[/bold] {url} (Ctrl-C stops it)"))


def _today() -> date:
    return datetime.now(UTC).date()


def _print_scan(config: Config, outcome: ScanOutcome) -> None:
    table = Table("video", "verdict", "score", "reason", title=f"verdicts of {outcome.run_id}")
    for row in outcome.verdicts.listed:
        score = "-" if row.score is None else f"{row.score:.3f}"
        table.add_row(row.uri.rsplit("/", 2)[-2] + "/" + row.uri.rsplit("/", 1)[-1], row.verdict, score, row.reason or "")
    console.print(table)
    summary = Table(title="scan summary", show_header=False)
    summary.add_row("model", f"{outcome.model.model_uri} ({', '.join('@' + a for a in outcome.model.aliases) or 'no alias'})")
    thresholds = outcome.model.contract.thresholds
    summary.add_row("thresholds", f"suspicious >= {thresholds.suspicious:.3f}, manipulated >= {thresholds.manipulated:.3f}")
    summary.add_row("videos judged now", str(outcome.verdicts.videos))
    if outcome.enqueued is not None:
        summary.add_row("queued for review", str(outcome.enqueued))
    for verdict, count in sorted(outcome.verdicts.by_verdict.items()):
        summary.add_row(f"verdict: {verdict}", str(count))
    for reason, count in sorted(outcome.verdicts.by_reason.items()):
        summary.add_row(f"reason: {reason}", str(count))
    for stage, seconds in outcome.stage_seconds.items():
        summary.add_row(f"seconds: {stage}", f"{seconds:.1f}")
    console.print(summary)
    _print_where(config)


def _run_ingest(spark: SparkSession, config: Config, paths: Sequence[str], ingest_date: date | None) -> None:
    from deepsift.lake.tables import VIDEOS
    from deepsift.stages.ingest import ingest

    with show_steps("ingest"):
        summary = ingest(spark, config, paths, ingest_date)
    table = Table(title="ingest", show_header=False)
    table.add_row("files listed", str(summary.files))
    table.add_row("new videos", str(summary.new_videos))
    # counted here, not by ingest(): a scan's ingest has no use for the total and would pay a Spark job for it
    table.add_row("videos in table", str(spark.table(VIDEOS.qualified(config.lake.schema_name)).count()))
    for reason, count in sorted(summary.probe_errors.items()):
        table.add_row(f"probe error: {reason}", str(count))
    for status, count in sorted(summary.provenance.items()):
        table.add_row(f"content credentials: {status}", str(count))
    for missing in summary.missing_inputs:
        table.add_row("missing input", missing)
    table.add_row("seconds", f"{summary.seconds:.1f}")
    console.print(table)


def _run_extract(spark: SparkSession, config: Config) -> None:
    from deepsift.stages.extract import extract_pending

    with show_steps("extract"):
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
        "example query (any Spark session over this home, e.g. pyspark with the same config):\n"
        f"  SELECT verdict, reason, count(*) FROM {config.lake.schema_name}.verdicts GROUP BY verdict, reason"
    )


if __name__ == "__main__":
    sys.exit(main())
