"""Demo clips the project makes itself, so that the main command has something to scan on a fresh clone.

deepsift ships no one else's media. The genuine clips (``authentic/``) are slow camera moves (zoom
and pan) over the public-domain portrait of Grace Hopper that matplotlib ships as sample data,
encoded with H.264 by PyAV, plus a moving colour field with no face. The manipulated clips
(``manipulated/``) make the same camera moves over a copy of the portrait whose face was replaced
by a blended, colour- and geometry-jittered copy of itself (the self-blending recipe the detectors
train on), so the demo shows both kinds of verdict. Clips are generated once and reused.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np

from deepsift.files import replaced_on_success

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
    manipulated: bool = False

    @property
    def relative_path(self) -> str:
        return f"{'manipulated' if self.manipulated else 'authentic'}/{self.name}"


DEMO_CLIPS = (
    DemoClip("hopper_zoom_in.mp4", 4.0, zoom=(1.0, 1.6), pan=(0.0, 0.0)),
    DemoClip("hopper_pan_left.mp4", 4.0, zoom=(1.3, 1.3), pan=(0.15, -0.15)),
    DemoClip("hopper_zoom_out.mp4", 3.0, zoom=(1.8, 1.1), pan=(-0.05, 0.05)),
    DemoClip("colour_field_no_face.mp4", 3.0, zoom=(1.0, 1.0), pan=(0.0, 0.0), has_face=False),
    DemoClip("hopper_swapped_zoom_in.mp4", 4.0, zoom=(1.0, 1.6), pan=(0.05, 0.0), manipulated=True),
    DemoClip("hopper_swapped_pan_right.mp4", 4.0, zoom=(1.3, 1.3), pan=(-0.15, 0.15), manipulated=True),
)
MANIPULATION_SEED = 2026


def portrait() -> np.ndarray:
    """The public-domain portrait (BGR) that matplotlib installs with its sample data."""
    from matplotlib import cbook

    image = cv2.imread(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    if image is None:
        raise FileNotFoundError("matplotlib's sample image grace_hopper.jpg is missing; reinstall matplotlib")
    return image


def ensure_demo_clips(folder: Path) -> list[Path]:
    """Generate any missing demo clip into ``folder`` and return every clip's path."""
    paths = []
    sources: dict[bool, np.ndarray] = {}
    for clip in DEMO_CLIPS:
        path = folder / clip.relative_path
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            if clip.manipulated not in sources:
                sources[clip.manipulated] = manipulated_portrait() if clip.manipulated else portrait()
            frames = camera_move(sources[clip.manipulated], clip) if clip.has_face else colour_field(clip)
            write_h264(path, frames)
        paths.append(path)
    return paths


def manipulated_portrait() -> np.ndarray:
    """The portrait with its face self-blended: found with the bundled Haar cascade, blended, pasted back."""
    from deepsift.detect.selfblend import self_blend
    from deepsift.faces.crops import square_crop_box
    from deepsift.faces.detector import HaarDetector

    image = portrait()
    detector = HaarDetector(score_threshold=0.5, detect_max_side=640, min_face_px=64, max_faces=1)
    faces = detector.detect(image)
    if not faces:
        raise RuntimeError("the demo portrait's face was not found; cannot make the manipulated demo clips")
    x0, y0, x1, y1 = square_crop_box(faces[0], 0.3, image.shape[1], image.shape[0])
    blended, _ = self_blend(np.ascontiguousarray(image[y0:y1, x0:x1]), np.random.default_rng(MANIPULATION_SEED))
    image[y0:y1, x0:x1] = blended
    return image


def camera_move(image: np.ndarray, clip: DemoClip) -> Iterator[np.ndarray]:
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


def colour_field(clip: DemoClip) -> Iterator[np.ndarray]:
    """Yield frames of a slowly shifting colour gradient (no face anywhere)."""
    ys, xs = np.mgrid[0 : SIZE[1], 0 : SIZE[0]].astype(np.float32)
    for index in range(int(clip.seconds * FPS)):
        phase = index / FPS
        frame = np.stack(
            [np.sin(xs / 90 + phase) * 120 + 128, np.sin(ys / 70 - phase) * 120 + 128, np.full_like(xs, 90)], axis=-1
        )
        yield frame.astype(np.uint8)


def write_h264(path: Path, frames: Iterable[np.ndarray]) -> None:
    """Encode BGR frames as H.264 (yuv420p, a keyframe every second) into an MP4 at ``path``."""
    with replaced_on_success(path) as partial, av.open(str(partial), mode="w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height = SIZE
        stream.pix_fmt = "yuv420p"
        stream.options = {"g": str(FPS), "crf": "20", "preset": "veryfast"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
