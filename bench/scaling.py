"""Benchmark: how does one scan scale from one core to two, and from local mode to a standalone cluster?

Makes ``--clips`` H.264 clips (FFmpeg, x264 veryfast, GOP 50 frames, no audio) from the shared
``faces/`` media in a temporary folder, each a source looped to one of ``--durations`` seconds, with a
distinct comment tag so that no two share a content id. Registers an untrained ``mobilenetv3_small_050`` at
128 px (the reference detector's architecture and size; 32 frames a video) as ``@champion`` in a
temporary MLflow store, then runs ``deepsift scan`` of the folder, each time in a fresh home (so
nothing is cached), on:

- ``local[1]`` and ``local[2]``;
- a standalone cluster of two workers with one core each (``infra/standalone_cluster.sh``), started
  here on free ports and stopped at the end.

Every run gets the same Spark settings (Delta snapshot partitions fixed, since Delta's default differs
between local and cluster masters). Throughput is videos per hour over the scan's own stages (the sum
of ``scan_runs.stage_seconds``: Spark's start-up excluded, shown apart); scaling efficiency is a
run's throughput divided by (cores x the ``local[1]`` throughput). The load average before and after
each run is printed beside it: on a shared machine, it decides more than the code does.

    python bench/scaling.py [--media ../shared/media] [--clips 16] [--durations 5 10 20 30]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
CLUSTER_SCRIPT = REPO_ROOT / "infra" / "standalone_cluster.sh"
SCAN_DATE = date(2026, 11, 25)
SPARK_CONF = {"spark.databricks.delta.snapshotPartitions": "4"}
STAGE_ORDER = ("ingest", "extract", "score", "verdicts")
"""The scan's stages in the order they run; ``scan_runs.stage_seconds`` (a map) does not keep it."""


@dataclass
class Run:
    """One scan: where it ran, its cores, its stages' seconds, the process's wall time and the load."""

    master: str
    label: str
    cores: int
    videos: int
    stage_seconds: dict[str, float]
    wall_s: float
    load_before: float
    load_after: float

    @property
    def scan_s(self) -> float:
        return sum(self.stage_seconds.values())

    @property
    def videos_per_hour(self) -> float:
        return self.videos / self.scan_s * 3600


def make_clips(media: Path, folder: Path, count: int, durations: list[int]) -> list[Path]:
    """``count`` clips cycling over the face clips and durations; unique bytes through a comment tag.

    Each source is re-encoded once (looping an AVI source directly made FFmpeg spin without output);
    the clips loop that encoding with stream copy.
    """
    sources = []
    for index, source in enumerate(sorted((media / "faces").iterdir())):
        encoded = folder / f"source{index}.mp4"
        _ffmpeg("-i", str(source), "-an", "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
                "-vf", "scale=trunc(iw/2)*2:trunc(ih/2)*2", "-g", "50", str(encoded))
        sources.append((source.stem, encoded))
    clips_dir = folder / "clips"
    clips_dir.mkdir()
    clips = []
    for index, ((name, encoded), seconds) in enumerate(zip(itertools.cycle(sources), itertools.cycle(durations))):
        if index == count:
            break
        clip = clips_dir / f"clip{index:02d}_{name}_{seconds}s.mp4"
        _ffmpeg("-stream_loop", "-1", "-i", str(encoded), "-t", str(seconds), "-c", "copy",
                "-metadata", f"comment=scaling-{index}", str(clip))
        clips.append(clip)
    return clips


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args], check=True, timeout=600)


def register_champion(home: Path) -> str:
    """An untrained detector as ``@champion`` in an MLflow store under ``home``; returns the tracking URI."""
    import torch

    from deepsift.config import load_config
    from deepsift.detect.architectures import architecture_spec, build_detector_network
    from deepsift.registry.mlflow_models import DetectorRegistry, embedded_store

    config = load_config(environ={}, overrides={"home": str(home)})
    torch.manual_seed(0)
    contract = architecture_spec("mobilenetv3_small_050").default_contract(input_size=128)
    registry = DetectorRegistry(config.mlflow, config.home)
    version = registry.log_and_register(
        build_detector_network(contract.architecture).state_dict(), contract, {"auc": 0.5}, "# untrained, for timing"
    )
    registry.set_alias("champion", version.version)
    return embedded_store(home).tracking_uri


def run_scan(
    master: str, label: str, cores: int, folder: Path, home: Path, tracking_uri: str
) -> Run:
    """``deepsift scan folder`` on ``master`` in a child process with its own home."""
    from deltalake import DeltaTable

    conf = dict(SPARK_CONF)
    if master.startswith("spark://"):
        conf["spark.driver.host"] = "127.0.0.1"
    env = {key: value for key, value in os.environ.items() if not key.startswith("DEEPSIFT_")} | {
        "DEEPSIFT_HOME": str(home),
        "DEEPSIFT_SPARK__MASTER": master,
        "DEEPSIFT_SPARK__SHUFFLE_PARTITIONS": "2",
        "DEEPSIFT_SPARK__DRIVER_MEMORY": "2g",
        "DEEPSIFT_SPARK__EXTRA_CONF": json.dumps(conf),
        "DEEPSIFT_MLFLOW__TRACKING_URI": tracking_uri,
    }
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    process = subprocess.run(
        [sys.executable, "-m", "deepsift.cli", "scan", str(folder), "--date", SCAN_DATE.isoformat()],
        env=env, capture_output=True, text=True, cwd=home.parent, check=False,
    )
    wall_s = time.perf_counter() - started
    if process.returncode != 0:
        output = process.stdout[-3000:] + process.stderr[-3000:]
        raise SystemExit(f"the scan on {master} failed (exit {process.returncode}):\n{output}")
    (record,) = DeltaTable(str(home / "warehouse" / "deepsift.db" / "scan_runs")).to_pyarrow_table().to_pylist()
    return Run(
        master, label, cores, record["videos"], dict(record["stage_seconds"]), wall_s, load_before, os.getloadavg()[0]
    )


def start_cluster(state_dir: Path) -> str:
    """Two workers with one core each on free ports; returns the master URL."""
    ports = []
    for _ in range(2):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            ports.append(probe.getsockname()[1])
    started = subprocess.run(
        ["bash", str(CLUSTER_SCRIPT), "start", "--state-dir", str(state_dir), "--port", str(ports[0]),
         "--webui-port", str(ports[1]), "--workers", "2", "--cores", "1", "--memory", "2g", "--host-per-worker"],
        capture_output=True, text=True, check=False,
    )
    if started.returncode != 0:
        raise SystemExit(f"the standalone cluster did not start:\n{started.stdout}{started.stderr}")
    return started.stdout.strip().splitlines()[-1]


def table(runs: list[Run]) -> str:
    """The markdown table: throughput, efficiency, seconds per stage, start-up and load per run."""
    baseline = next(run for run in runs if run.cores == 1).videos_per_hour
    named = {stage for run in runs for stage in run.stage_seconds}
    stages = [stage for stage in STAGE_ORDER if stage in named] + sorted(named - set(STAGE_ORDER))
    lines = [
        "| master | cores | videos | videos/hour | scaling efficiency | "
        + " | ".join(f"{stage} s" for stage in stages)
        + " | scan s (sum of stages) | process wall s (with Spark start-up) | load before / after |",
        "|---|---|---|---|---|" + "---|" * len(stages) + "---|---|---|",
    ]
    for run in runs:
        efficiency = run.videos_per_hour / (run.cores * baseline)
        lines.append(
            f"| {run.label} | {run.cores} | {run.videos} | {run.videos_per_hour:.0f} | {efficiency:.0%} | "
            + " | ".join(f"{run.stage_seconds.get(stage, 0.0):.1f}" for stage in stages)
            + f" | {run.scan_s:.1f} | {run.wall_s:.1f} | {run.load_before:.1f} / {run.load_after:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--media", type=Path, default=REPO_ROOT.parent / "shared" / "media")
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--durations", type=int, nargs="+", default=[5, 10, 20, 30])
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="deepsift-scaling-") as scratch:
        root = Path(scratch)
        clips = make_clips(args.media, root, args.clips, args.durations)
        folder = clips[0].parent
        total_s = sum(itertools.islice(itertools.cycle(args.durations), len(clips)))
        print(f"{len(clips)} clips, {total_s:.0f} s of video, in {folder}", flush=True)
        tracking_uri = register_champion(root / "model-store")
        runs = []
        for master, cores in (("local[1]", 1), ("local[2]", 2)):
            runs.append(run_scan(master, master, cores, folder, root / f"home-{cores}", tracking_uri))
            print(runs[-1], flush=True)
        state_dir = root / "cluster"
        try:
            url = start_cluster(state_dir)
            label = "standalone, 2 workers x 1 core"
            runs.append(run_scan(url, label, 2, folder, root / "home-cluster", tracking_uri))
            print(runs[-1], flush=True)
        finally:
            subprocess.run(["bash", str(CLUSTER_SCRIPT), "stop", "--state-dir", str(state_dir)], check=False)
    print(f"\n{date.today().isoformat()}, {os.cpu_count()} CPUs, {len(clips)} clips ({total_s:.0f} s of video)\n")
    print(table(runs))


if __name__ == "__main__":
    main()
