"""The ``deepsift`` command line: argument parsing, one config, one SparkSession, one library call."""

from __future__ import annotations

import argparse
import logging
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

    demo = commands.add_parser("demo", help="ingest and extract the demo clips (generated on first use)")
    demo.add_argument("--folder", type=Path, default=Path("demo"), help="where the demo clips are generated")
    demo.set_defaults(handler=_demo)
    return parser


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


def _demo(args: argparse.Namespace, config: Config) -> int:
    from deepsift.demo import ensure_demo_clips

    with console.status(f"generating demo clips in {args.folder}"):
        clips = ensure_demo_clips(args.folder)
    console.print(f"demo clips: {len(clips)} in {args.folder}")
    spark = _session(config)
    _run_ingest(spark, config, [str(args.folder)], None)
    _run_extract(spark, config)
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
    from deepsift.lake.session import JavaNotFoundError
    from deepsift.stages.ingest import NoInputError

    return (JarDownloadError, JavaNotFoundError, NoInputError, FileNotFoundError)

if __name__ == "__main__":
    sys.exit(main())
