"""Benchmark: does the scan's detect step keep a GPU as busy as the bare model does, in faces per second?

The detect step of a scan is a Spark ``mapInArrow`` whose body is
:func:`deepsift.detect.arrow_scoring.score_crop_batches`: Arrow batches of JPEG face crops in (as the
``faces`` table stores them), batches of scores out. This script feeds that very function directly,
with no Spark, Java or MLflow, so it runs on a bare GPU host. Two modes:

``--make-crops FILE`` (run where deepsift's media stack and the shared media are): samples every
frame of the shared ``faces/`` clips, finds faces with YuNet and crops them with deepsift's own
extraction (:func:`deepsift.faces.extraction.extract_video`), then writes the JPEG crops to a small
Parquet file (an even subset of them if they exceed ``--max-mb``).

Default mode (run on the GPU host): for each architecture, with random weights (throughput does not
depend on them) and the architecture's default contract, measures on the same faces:

(i) bare: uint8 crops already on the GPU, the contract's normalisation and the forward pass under
    bf16 autocast, ``--batch-size`` crops per pass, synchronised;
(ii) UDF: ``score_crop_batches`` fed Arrow record batches of ``--arrow-batch`` rows (Spark's default
    ``spark.sql.execution.arrow.maxRecordsPerBatch``) with a ``FaceScorer`` on the device, scoring
    ``--batch-size`` crops per forward pass, exactly as the scan's executors call it: on a GPU the
    crops of the next batches are decoded on ``crop_decode_threads`` threads meanwhile;
(ii') the same with decoding on the task's one thread between forward passes (the UDF before the
    decode pool, and what a CPU task does);

and the two halves of (ii') apart: (ii-a) decoding the JPEG crops on one CPU thread and (ii-b)
``FaceScorer.score`` on crops already decoded in host memory (copy to the device, normalisation,
forward). Two rows show what decoding alone reaches: (w1) ``decode_crop`` on a pool of that many
threads (OpenCV releases the GIL) and (w2) nvJPEG batch decoding on the GPU
(``torchvision.io.decode_jpeg``, when torchvision is there; not used by the library).

Crops are made at one size (380 px, EfficientNet-B4's); a contract that wants another size gets
them shrunk with INTER_AREA and re-encoded at JPEG quality 95 when the file is loaded, which is how
the extractor makes a crop of that size from a larger face region; this is printed. Each cell is the
median of ``--repeats`` timed passes after a warm-up, modes interleaved.

    python bench/gpu_detect.py --make-crops .deepsift/bench/crops.parquet
    python bench/gpu_detect.py --crops .deepsift/bench/crops.parquet            # on the GPU host
    python bench/gpu_detect.py --crops .deepsift/bench/crops.parquet --device cpu --limit 64 --arch efficientnet_b0
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from deepsift.config import DetectConfig
from deepsift.detect.architectures import architecture_spec, build_detector_network
from deepsift.detect.arrow_scoring import crop_decode_threads, score_crop_batches
from deepsift.detect.contract import PreprocessContract
from deepsift.detect.scoring import FaceScorer, inference_autocast
from deepsift.faces.crops import decode_crop
from device_timing import Cost, timed

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CROPS = REPO_ROOT / ".deepsift" / "bench" / "crops.parquet"
DEFAULT_MEDIA = REPO_ROOT.parent / "shared" / "media"
DEFAULT_ARCHS = ["efficientnet_b0", "xception", "efficientnet_b4"]
CROP_SIZE = 380
"""Crops are stored at the largest input size measured (EfficientNet-B4) and shrunk for the others."""
JPEG_QUALITY = 95
"""The ``faces.jpeg_quality`` default: what the ``faces`` table holds."""
SCORE_BATCH_SIZE = DetectConfig().gpu_batch_size
"""The scan's crops per forward pass on a GPU (``detect.gpu_batch_size``)."""
SPARK_ARROW_BATCH = 10_000
"""Spark's default ``spark.sql.execution.arrow.maxRecordsPerBatch``: rows per Arrow batch a UDF gets."""
DISTINCT_DEVICE_BATCHES = 8
"""The bare pass cycles through at most this many distinct batches held on the device."""
CROPS_SCHEMA = pa.schema([
    ("video_id", pa.string()),
    ("frame_index", pa.int32()),
    ("face_index", pa.int32()),
    ("crop", pa.binary()),
])


# --- making the crops (runs where the media stack and the shared media are) -----------------------


def make_crops(out: Path, media: Path, frames_per_video: int, max_mb: float) -> None:
    """Extract JPEG face crops of every clip in ``media/faces`` with deepsift's pipeline; write Parquet."""
    from deepsift.config import DecodeLimits, FacesConfig, SamplingConfig
    from deepsift.faces.extraction import extract_video, init_worker

    faces = FacesConfig(crop_size=CROP_SIZE, jpeg_quality=JPEG_QUALITY)
    state = init_worker(faces.model_dump_json())
    sampling, limits = SamplingConfig(frames_per_video=frames_per_video), DecodeLimits()
    rows: list[dict[str, object]] = []
    for clip in sorted((media / "faces").iterdir()):
        result = extract_video(state, str(clip), None, sampling, limits)
        rows += [
            {"video_id": clip.name, "frame_index": f.frame_index, "face_index": f.face_index, "crop": f.crop}
            for f in result.faces
        ]
        print(f"{clip.name}: {result.status}, {result.n_frames} frames, {len(result.faces)} faces", flush=True)
    total = sum(len(row["crop"]) for row in rows)  # type: ignore[arg-type]
    budget = int(max_mb * 1e6)
    if total > budget:
        keep = max(1, len(rows) * budget // total)
        rows = [rows[int(i * len(rows) / keep)] for i in range(keep)]
    table = pa.Table.from_pylist(rows, schema=CROPS_SCHEMA).replace_schema_metadata(
        {"crop_size": str(CROP_SIZE), "jpeg_quality": str(JPEG_QUALITY), "detector": state.detector.name}
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out, compression="none")
    print(f"wrote {table.num_rows} crops of {CROP_SIZE} px ({out.stat().st_size / 1e6:.1f} MB) to {out}")


# --- measuring (runs on the GPU host, or on a CPU with --device cpu --limit N) --------------------


def load_crops(path: Path, size: int, limit: int | None) -> tuple[list[bytes], str]:
    """The file's JPEG crops at ``size`` px (shrunk and re-encoded if stored larger) and a note saying how."""
    table = pq.read_table(path)
    meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    stored = int(meta.get("crop_size", CROP_SIZE))
    crops: list[bytes] = table.column("crop").to_pylist()
    if limit is not None:
        crops = crops[:limit]
    if size == stored:
        return crops, f"{len(crops)} distinct crops of {size} px as extracted"
    if size > stored:
        raise SystemExit(f"crops are {stored} px; a {size} px contract needs crops made at that size or larger")
    resized = []
    for data in crops:
        image = cv2.resize(decode_crop(data), (size, size), interpolation=cv2.INTER_AREA)
        ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise RuntimeError("OpenCV could not re-encode a crop")
        resized.append(encoded.tobytes())
    return resized, f"{len(crops)} distinct crops of {stored} px shrunk to {size} px (INTER_AREA) and re-encoded"


def arrow_batches(crops: list[bytes], faces: int, rows_per_batch: int) -> list[pa.RecordBatch]:
    """``faces`` rows cycling through ``crops``, in Arrow batches shaped like the ``faces`` table's read."""
    batches = []
    for start in range(0, faces, rows_per_batch):
        count = min(rows_per_batch, faces - start)
        index = [(start + i) for i in range(count)]
        batches.append(pa.RecordBatch.from_pydict(
            {
                "video_id": [f"v{i // 32:06d}" for i in index],
                "frame_index": [i % 32 for i in index],
                "face_index": [0] * count,
                "crop": [crops[i % len(crops)] for i in index],
            },
            schema=CROPS_SCHEMA,
        ))
    return batches


def normalise_on_device(pixels: torch.Tensor, contract: PreprocessContract) -> torch.Tensor:
    """The contract's preprocessing (BGR uint8 NHWC -> normalised RGB float NCHW) on a device tensor.

    The same arithmetic as ``deepsift.detect.preprocess.crops_to_tensor``, which starts from host memory.
    """
    mean = torch.tensor(contract.mean, dtype=torch.float32, device=pixels.device)
    std = torch.tensor(contract.std, dtype=torch.float32, device=pixels.device)
    scale = (1.0 / (255.0 * std)).view(1, 3, 1, 1)
    shift = (mean / std).view(1, 3, 1, 1)
    return pixels.permute(0, 3, 1, 2)[:, [2, 1, 0]].to(torch.float32).mul_(scale).sub_(shift)


def decode_all(crops: list[bytes]) -> np.ndarray:
    """What the UDF does between forward passes: ``decode_crop`` each crop, one thread, then stack."""
    return np.stack([decode_crop(data) for data in crops])


def nvjpeg_decode(crops: list[bytes], device: torch.device, batch_size: int) -> Callable[[], object] | None:
    """A what-if pass decoding the crops with nvJPEG in batches, or None where it is not available."""
    try:
        from torchvision.io import decode_jpeg
    except ImportError:
        return None
    if device.type != "cuda":
        return None
    encoded = [torch.frombuffer(bytearray(data), dtype=torch.uint8) for data in crops]

    def run() -> None:
        for start in range(0, len(encoded), batch_size):
            decode_jpeg(encoded[start : start + batch_size], device=device)

    return run


def measure(arch: str, crops_path: Path, device: torch.device, args: argparse.Namespace) -> dict[str, object]:
    """Every mode for one architecture on the same faces; returns faces/s and host core-ms per face."""
    contract = architecture_spec(arch).default_contract()
    crops, note = load_crops(crops_path, contract.input_size, args.limit)
    faces = args.limit or args.faces
    torch.manual_seed(0)
    network = build_detector_network(arch)
    scorer = FaceScorer(network, contract, device=device)
    batches = arrow_batches(crops, faces, args.arrow_batch)
    all_crops = [crops[i % len(crops)] for i in range(faces)]
    decoded = decode_all(crops)
    host = np.stack([decoded[i % len(decoded)] for i in range(min(faces, args.batch_size * DISTINCT_DEVICE_BATCHES))])
    on_device = [
        torch.from_numpy(host[start : start + args.batch_size]).to(device)
        for start in range(0, len(host), args.batch_size)
    ]
    n_passes = -(-faces // args.batch_size)
    last = faces - (n_passes - 1) * args.batch_size

    def bare() -> None:
        with torch.inference_mode(), inference_autocast(device):
            for step in range(n_passes):
                pixels = on_device[step % len(on_device)]
                scorer.network(normalise_on_device(pixels if step < n_passes - 1 else pixels[:last], contract))

    threads = args.decode_threads or crop_decode_threads(str(device))

    def udf(decode_threads: int) -> Callable[[], None]:
        def run() -> None:
            for _ in score_crop_batches(iter(batches), lambda: scorer, args.batch_size, decode_threads):
                pass

        return run

    host_faces = np.stack([decoded[i % len(decoded)] for i in range(faces)])
    passes: dict[str, Callable[[], object]] = {
        "bare": bare,
        "udf": udf(threads),
        "udf_1thread": udf(1),
        "decode": lambda: decode_all(all_crops),
        "score": lambda: scorer.score(host_faces, batch_size=args.batch_size),
    }
    pool = ThreadPoolExecutor(threads)
    passes["threads"] = lambda: list(pool.map(decode_crop, all_crops, chunksize=64))
    gpu_decode = nvjpeg_decode(all_crops, device, args.batch_size)
    if gpu_decode is not None:
        passes["nvjpeg"] = gpu_decode
    for operation in passes.values():
        for _ in range(args.warmup):
            timed(operation, device)
    timings: dict[str, list[Cost]] = {mode: [] for mode in passes}
    for _ in range(args.repeats):
        for mode, operation in passes.items():
            timings[mode].append(timed(operation, device))
    pool.shutdown()
    medians = {
        mode: Cost(statistics.median(c.wall_s for c in costs), statistics.median(c.core_s for c in costs))
        for mode, costs in timings.items()
    }
    return {
        "arch": arch,
        "size": contract.input_size,
        "faces": faces,
        "note": note,
        "threads": threads,
        "rate": {mode: faces / cost.wall_s for mode, cost in medians.items()},
        "core_ms": {mode: 1000.0 * cost.core_s / faces for mode, cost in medians.items()},
    }


def report(rows: list[dict[str, object]], device_name: str, args: argparse.Namespace) -> list[str]:
    """Markdown tables: faces/s per mode with the UDF's share of bare, then the decode/forward split."""
    lines = [
        (
            f"device: {device_name}; batch {args.batch_size} per forward pass; Arrow batches of {args.arrow_batch} rows; "
            f"median of {args.repeats} passes after {args.warmup} warm-up; random weights"
        ),
        "",
        (
            "| architecture | input px | faces per pass | (i) bare faces/s | (ii) UDF faces/s (decode threads) | "
            "(ii)/(i) | (ii') UDF, decode on its one thread | (ii')/(i) | (ii) host core-ms/face |"
        ),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        rate, core = row["rate"], row["core_ms"]
        assert isinstance(rate, dict) and isinstance(core, dict)
        lines.append(
            f"| {row['arch']} | {row['size']} | {row['faces']} | {rate['bare']:,.0f} | {rate['udf']:,.0f} "
            f"({row['threads']}) | {100 * rate['udf'] / rate['bare']:.0f}% | {rate['udf_1thread']:,.0f} | "
            f"{100 * rate['udf_1thread'] / rate['bare']:.0f}% | {core['udf']:.2f} |"
        )
    lines += [
        "",
        (
            "| architecture | (ii-a) decode_crop, 1 thread, crops/s | (w1) decode_crop on the pool, crops/s | "
            "(w2) nvJPEG on the GPU, crops/s | (ii-b) scorer on decoded crops, faces/s |"
        ),
        "|---|---|---|---|---|",
    ]
    for row in rows:
        rate = row["rate"]
        assert isinstance(rate, dict)
        nvjpeg = f"{rate['nvjpeg']:,.0f}" if "nvjpeg" in rate else "n/a"
        lines.append(
            f"| {row['arch']} | {rate['decode']:,.0f} | {rate['threads']:,.0f} | {nvjpeg} | {rate['score']:,.0f} |"
        )
    lines += ["", *(f"{row['arch']}: {row['note']}" for row in rows)]
    return lines


def run(args: argparse.Namespace) -> None:
    device = torch.device(args.device)
    if not args.crops.exists():
        raise SystemExit(f"{args.crops} does not exist: make it first with --make-crops {args.crops}")
    if args.threads:
        torch.set_num_threads(args.threads)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"torch {torch.__version__}, {name}, {os.cpu_count()} CPU cores", flush=True)
    rows = []
    for arch in args.arch:
        started = time.perf_counter()
        rows.append(measure(arch, args.crops, device, args))
        rate = rows[-1]["rate"]
        assert isinstance(rate, dict)
        print(
            f"{arch}: bare {rate['bare']:,.0f} faces/s, UDF {rate['udf']:,.0f} faces/s "
            f"({100 * rate['udf'] / rate['bare']:.0f}%), one decode thread {rate['udf_1thread']:,.0f}, "
            f"decode {rate['decode']:,.0f}/s, "
            f"scorer {rate['score']:,.0f}/s ({time.perf_counter() - started:.0f} s)",
            flush=True,
        )
    print()
    print("\n".join(report(rows, name, args)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--make-crops", type=Path, metavar="FILE", help="extract crops from the shared media to FILE")
    parser.add_argument("--media", type=Path, default=DEFAULT_MEDIA, help="shared media folder (with faces/)")
    parser.add_argument("--frames-per-video", type=int, default=1024, help="frames sampled per clip for crops")
    parser.add_argument("--max-mb", type=float, default=20.0, help="crops file budget; an even subset beyond it")
    parser.add_argument("--crops", type=Path, default=DEFAULT_CROPS, help="crops file made by --make-crops")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--arch", nargs="+", default=DEFAULT_ARCHS)
    parser.add_argument("--faces", type=int, default=4096, help="faces per timed pass")
    parser.add_argument("--limit", type=int, help="use only this many distinct crops and faces per pass (CPU checks)")
    parser.add_argument("--batch-size", type=int, default=SCORE_BATCH_SIZE)
    parser.add_argument("--arrow-batch", type=int, default=SPARK_ARROW_BATCH)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1, help="untimed passes of every mode first")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--decode-threads", type=int, help="decode threads of (ii) and (w1) (default: the UDF's, crop_decode_threads)")
    args = parser.parse_args()
    if args.make_crops:
        make_crops(args.make_crops, args.media, args.frames_per_video, args.max_mb)
        return
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("no CUDA device is visible: pass --device cpu (with --limit N for a quick check)")
    run(args)


if __name__ == "__main__":
    main()
