"""Demo clips the project makes itself, so that the main command has something to scan on a fresh clone.

deepsift ships no one else's media. The genuine clips are slow camera moves (zoom and pan) over the
public-domain portrait of Grace Hopper that matplotlib ships as sample data, encoded with H.264 by
PyAV; the no-face clip is a moving colour field. Clips are generated once and reused.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np

FPS = 25
SIZE = (640, 480)


@dataclass(frozen=True)
class DemoClip:
    """One generated clip: its file name, length and how the virtual camera moves (zoom from/to, pan)."""

    name: str
    seconds: float
    zoom: tuple[float, float]
    pan: tuple[float, float]
    has_face: bool = True


DEMO_CLIPS = (
    DemoClip("hopper_zoom_in.mp4", 4.0, zoom=(1.0, 1.6), pan=(0.0, 0.0)),
    DemoClip("hopper_pan_left.mp4", 4.0, zoom=(1.3, 1.3), pan=(0.15, -0.15)),
    DemoClip("hopper_zoom_out.mp4", 3.0, zoom=(1.8, 1.1), pan=(-0.05, 0.05)),
    DemoClip("colour_field_no_face.mp4", 3.0, zoom=(1.0, 1.0), pan=(0.0, 0.0), has_face=False),
)


def portrait() -> np.ndarray:
    """The public-domain portrait (BGR) that matplotlib installs with its sample data."""
    from matplotlib import cbook

    image = cv2.imread(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    if image is None:
        raise FileNotFoundError("matplotlib's sample image grace_hopper.jpg is missing; reinstall matplotlib")
    return image


def ensure_demo_clips(folder: Path) -> list[Path]:
    """Generate any missing demo clip into ``folder`` and return every clip's path."""
    folder.mkdir(parents=True, exist_ok=True)
    source = portrait()
    paths = []
    for clip in DEMO_CLIPS:
        path = folder / clip.name
        if not path.exists():
            frames = camera_move(source, clip) if clip.has_face else colour_field(clip)
            write_h264(path, frames)
        paths.append(path)
    return paths


def camera_move(image: np.ndarray, clip: DemoClip):
    """Yield frames of a virtual camera zooming and panning over ``image``."""
    height, width = image.shape[:2]
    count = int(clip.seconds * FPS)
    for index in range(count):
        t = index / max(1, count - 1)
        zoom = clip.zoom[0] + (clip.zoom[1] - clip.zoom[0]) * t
        shift = clip.pan[0] + (clip.pan[1] - clip.pan[0]) * t
        view_h = height / zoom
        view_w = min(width, view_h * SIZE[0] / SIZE[1])
        centre_x = width / 2 + shift * width
        centre_y = height * 0.42
        x0 = int(np.clip(centre_x - view_w / 2, 0, width - view_w))
        y0 = int(np.clip(centre_y - view_h / 2, 0, height - view_h))
        view = image[y0 : y0 + int(view_h), x0 : x0 + int(view_w)]
        yield cv2.resize(view, SIZE, interpolation=cv2.INTER_AREA)


def colour_field(clip: DemoClip):
    """Yield frames of a slowly shifting colour gradient (no face anywhere)."""
    ys, xs = np.mgrid[0 : SIZE[1], 0 : SIZE[0]].astype(np.float32)
    for index in range(int(clip.seconds * FPS)):
        phase = index / FPS
        frame = np.stack(
            [np.sin(xs / 90 + phase) * 120 + 128, np.sin(ys / 70 - phase) * 120 + 128, np.full_like(xs, 90)], axis=-1
        )
        yield frame.astype(np.uint8)


def write_h264(path: Path, frames) -> None:
    """Encode BGR frames as H.264 (yuv420p, a keyframe every second) into an MP4 at ``path``."""
    partial = path.with_suffix(".part.mp4")
    with av.open(str(partial), mode="w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height = SIZE
        stream.pix_fmt = "yuv420p"
        stream.options = {"g": str(FPS), "crf": "20", "preset": "veryfast"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    partial.replace(path)
