"""The report page: :class:`~deepsift.reports.data.DailyData` through the Jinja2 template, autoescaped.

Every value from a file or a user (paths, URIs, reasons, error details) reaches the page through the
template's autoescaping; the charts escape their own text (:mod:`deepsift.reports.charts`). The page is
self-contained: CSS inline, charts inline SVG, face crops ``data:`` URIs, and a Content Security Policy
that forbids scripts and any request, so even a value that slipped through could neither run nor
fetch anything.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import cv2
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from deepsift.detect.contract import Thresholds
from deepsift.faces.crops import decode_crop, encode_crop
from deepsift.reports.charts import VERDICT_COLOURS, timeline_chart, trend_chart
from deepsift.reports.data import DailyData, FlaggedVideo, ReportFace
from deepsift.verdicts.labels import Verdict

TEMPLATE = "daily.html.j2"
THUMBNAIL_PX = 128
"""Longest side of an embedded face crop; larger crops are shrunk so a 200-video page stays a few MB."""
_ENVIRONMENT = Environment(
    loader=FileSystemLoader(Path(__file__).with_name("templates")),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass(frozen=True)
class Thumbnail:
    """A face crop ready for an ``<img>``: ``src`` is a ``data:`` URI, None if the crop cannot be decoded."""

    src: str | None
    caption: str


@dataclass(frozen=True)
class VideoCard:
    video: FlaggedVideo
    timeline: Markup
    thumbnails: tuple[Thumbnail, ...]


def render_daily(data: DailyData, generated_at: datetime) -> str:
    """The whole HTML page of ``data``."""
    cards = [
        VideoCard(
            video,
            timeline_chart(video.faces, _thresholds(data, video)),
            tuple(_thumbnail(crop) for crop in sorted(video.crops, key=lambda c: c.frame_index)),
        )
        for video in data.flagged
    ]
    return _ENVIRONMENT.get_template(TEMPLATE).render(
        report=data,
        generated_at=generated_at.strftime("%Y-%m-%d %H:%M UTC"),
        verdicts=[verdict.value for verdict in Verdict],
        colours=VERDICT_COLOURS,
        trend=trend_chart(data.trend_days(), data.trend, data.report_date),
        cards=cards,
    )


def thumbnail_src(crop: bytes) -> str | None:
    """A JPEG ``data:`` URI of an encoded crop, shrunk to at most :data:`THUMBNAIL_PX` a side.

    The crop is decoded and encoded again, so whatever bytes a table holds, the page embeds a real image.
    """
    try:
        image = decode_crop(crop)
    except ValueError:
        return None
    height, width = image.shape[:2]
    scale = THUMBNAIL_PX / max(height, width)
    if scale < 1:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return "data:image/jpeg;base64," + base64.b64encode(encode_crop(image, "jpeg", 85)).decode("ascii")


def _thumbnail(crop: ReportFace) -> Thumbnail:
    when = f"{crop.ts_s:.1f} s" if crop.ts_s is not None else f"frame {crop.frame_index}"
    return Thumbnail(thumbnail_src(crop.crop), f"{when} · {crop.score:.3f}")


def _thresholds(data: DailyData, video: FlaggedVideo) -> Thresholds | None:
    model = data.model(video.model_name, video.model_version)
    return model.contract.thresholds if model and model.contract else None
