"""Benchmark: what reading Content Credentials adds to ingest, per file, on folders of videos.

Every file goes through ingest's per-file work as an executor does it (the content id, then
:func:`deepsift.media.inspect.inspect_file` in the warm isolated worker), once without the
credentials check and once with it, alternately, ``--rounds`` times; each file's median of each is
kept, so one slow round on a shared machine does not count. The table gives, per folder, seconds per
file without and with the check and the share the check adds (target: at most 5%); since that
difference of two noisy figures can come out below zero on a busy machine, the reader's own time
(:func:`~deepsift.provenance.credentials.read_credentials` in this process, same median) is given too,
as a share of ingest without the check. Spark's own part of
ingest (listing, checkpoint, MERGE) is left out, so the share of a whole ingest is smaller still.
Nothing here is signed: a signed file's check also re-hashes the bytes its manifest binds.

    python bench/provenance.py ../shared/media .deepsift/bench/scan/clips
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from deepsift.config import DecodeLimits, load_config
from deepsift.media.inspect import inspect_file
from deepsift.media.probe import content_id
from deepsift.provenance.credentials import CredentialCheck, read_credentials


def files_of(folder: Path) -> list[Path]:
    """Every file under ``folder``, hidden ones skipped as ingest skips them."""
    return sorted(
        p for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def ingest_seconds(path: Path, limits: DecodeLimits, check: CredentialCheck | None) -> float:
    started = time.perf_counter()
    content_id(path)
    inspect_file(str(path), limits, check)
    return time.perf_counter() - started


def reader_seconds(path: Path, check: CredentialCheck) -> float:
    started = time.perf_counter()
    read_credentials(str(path), check)
    return time.perf_counter() - started


def spark_ingests(folders: list[Path], rounds: int) -> list[str]:
    """Whole ingests of each folder into fresh schemas, check off then on; a table of median seconds."""
    from deepsift.lake.session import build_spark_session
    from deepsift.lake.tables import PROVENANCE, VIDEOS, ensure_tables
    from deepsift.stages.ingest import ingest

    lines = ["", "| folder | whole ingest s, check off | on | added |", "|---|---|---|---|"]
    with tempfile.TemporaryDirectory(prefix="deepsift-bench-provenance-") as home:
        config = load_config(environ={}, overrides={"home": home, "spark.master": "local[2]"})
        spark = build_spark_session(config)
        try:
            warm_up = config.model_copy(update={"lake": config.lake.model_copy(update={"schema_name": "bench_warm_up"})})
            ingest(spark, warm_up, [str(folders[0])])  # Python workers and JIT warm, not counted
            for index, folder in enumerate(folders):
                seconds: dict[bool, list[float]] = {False: [], True: []}
                for round_ in range(rounds):
                    for enabled in (False, True):
                        schema = f"bench_{index}_{round_}_{'on' if enabled else 'off'}"
                        run = config.model_copy(update={
                            "lake": config.lake.model_copy(update={"schema_name": schema}),
                            "provenance": config.provenance.model_copy(update={"enabled": enabled}),
                        })
                        ensure_tables(spark, schema, (VIDEOS, PROVENANCE))  # as on any night but the first
                        seconds[enabled].append(ingest(spark, run, [str(folder)]).seconds)
                off, on = statistics.median(seconds[False]), statistics.median(seconds[True])
                lines.append(f"| {folder} | {off:.1f} | {on:.1f} | {100 * (on / off - 1):+.1f}% |")
        finally:
            spark.stop()
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--spark", action="store_true", help="also time whole ingests on Spark (slower)")
    args = parser.parse_args()
    limits = DecodeLimits()
    check = CredentialCheck(anchors_pem=None, max_manifest_bytes=16 << 20)
    inspect_file(__file__, limits, check)  # start the worker and import the SDK before timing
    lines = [
        f"median of {args.rounds} alternating rounds per file, one warm isolated worker",
        "",
        "| folder | files | MB | ingest s/file without credentials | with | added | reader alone s/file | reader / ingest |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for folder in args.folders:
        files = files_of(folder)
        without = with_check = reader = 0.0
        for path in files:
            rounds = [
                (ingest_seconds(path, limits, None), ingest_seconds(path, limits, check), reader_seconds(path, check))
                for _ in range(args.rounds)
            ]
            without += statistics.median(r[0] for r in rounds)
            with_check += statistics.median(r[1] for r in rounds)
            reader += statistics.median(r[2] for r in rounds)
        size_mb = sum(p.stat().st_size for p in files) / 1e6
        lines.append(
            f"| {folder} | {len(files)} | {size_mb:.0f} | {without / len(files):.4f} | {with_check / len(files):.4f} | "
            f"{100 * (with_check / without - 1):+.1f}% | {reader / len(files):.5f} | {100 * reader / without:.1f}% |"
        )
    if args.spark:
        lines += spark_ingests(args.folders, args.rounds)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
