"""The daily moderation report over the shared scanned lake, opened in a real headless Chromium.

The day of ``scanned_lake`` is reported twice (first with its lists capped at one flagged and two
listed videos, then in full at the default path) and a date without a scan once. Chromium takes a screenshot of each page
(it must not be blank) and dumps its DOM, which must show the counts the tables hold (queried here,
independently of the report code), the hostile file name as text, no ``<script>`` element and no
reference to anything outside the page. The ``reports`` table must hold one row per date.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from deepsift.media.sources import local_path
from deepsift.reports.daily import ReportPathError, generate_daily_report, report_path
from deepsift.reports.data import (
    DailyData,
    FaceScore,
    FlaggedVideo,
    JudgedVideo,
    ModelInForce,
    ReasonExample,
    ReasonSummary,
    ReportFace,
    ReportSettings,
    ScanRun,
)
from deepsift.reports.render import render_daily
from tests.browser import chromium

pytestmark = pytest.mark.spark

NO_SCAN_DATE = date(2026, 11, 20)
"""No scan in ``scanned_lake`` has this date."""


def screenshot(page: Path, out: Path) -> np.ndarray:
    chromium(f"--screenshot={out}", "--window-size=1366,900", page.as_uri())
    pixels = cv2.imread(str(out), cv2.IMREAD_COLOR)
    assert pixels is not None, f"Chromium wrote no readable screenshot {out}"
    return pixels


def assert_not_blank(pixels: np.ndarray) -> None:
    """Some contrast, and more than a sliver of the window away from the most common colour."""
    assert pixels.shape[:2] == (900, 1366)
    assert pixels.std() > 20, pixels.std()
    flat = pixels.reshape(-1, 3)
    colours, counts = np.unique(flat, axis=0, return_counts=True)
    background = colours[counts.argmax()]
    assert (np.abs(flat.astype(int) - background).sum(axis=1) > 30).mean() > 0.05


@dataclass
class Dom(HTMLParser):
    """What the tests read from a DOM dump: tags, text, values of ``data-count-*`` and ``data-threshold``
    elements, the flagged video cards with their timeline points and face images, the listed videos."""

    tags: Counter[str] = field(default_factory=Counter)
    text: list[str] = field(default_factory=list)
    references: list[str] = field(default_factory=list)
    counts: dict[str, dict[str, str]] = field(default_factory=dict)
    cards: list[dict] = field(default_factory=list)
    listed: list[str] = field(default_factory=list)
    _pending: tuple[str, str] | None = None
    _in_card: bool = False

    def __post_init__(self) -> None:
        super().__init__(convert_charrefs=True)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tags[tag] += 1
        self.references += [value or "" for name, value in attrs if name in ("src", "href", "xlink:href", "srcset")]
        for name, value in attributes.items():
            if name.startswith("data-count-") or name == "data-threshold":
                self._pending = (name.removeprefix("data-").removeprefix("count-"), value or "")
        if "data-listed" in attributes:
            self.listed.append(attributes["data-listed"] or "")
        if tag == "article" and "data-video-id" in attributes:
            self._in_card = True
            self.cards.append({**attributes, "circles": 0, "images": 0})
        elif self._in_card and tag == "circle" and attributes.get("class") == "face-score":
            self.cards[-1]["circles"] += 1
        elif self._in_card and tag == "img" and (attributes.get("src") or "").startswith("data:image/"):
            self.cards[-1]["images"] += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "article":
            self._in_card = False

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._pending and data.strip():
            kind, key = self._pending
            self.counts.setdefault(kind, {})[key] = data.strip()
            self._pending = None

    def count(self, kind: str) -> dict[str, int]:
        return {key: int(value) for key, value in self.counts.get(kind, {}).items()}

    @property
    def all_text(self) -> str:
        return " ".join("".join(self.text).split())


def dom_of(page: Path) -> Dom:
    dom = Dom()
    dom.feed(chromium("--dump-dom", page.as_uri()).stdout)
    return dom


HOSTILE = '"><script>alert(1)</script><img src=x onerror=alert(2)>'


def test_every_stored_text_is_escaped_wherever_the_page_shows_it(tmp_path):
    """No Spark: a report whose every text field holds markup, as a crafted upload or a bad row could."""
    day = date(2026, 11, 24)
    video = FlaggedVideo(
        rank=1, video_id=HOSTILE, location=HOSTILE, verdict="manipulated", score=0.9, model_name=HOSTILE,
        model_version=1, n_frames=2, n_faces=1, faces=(FaceScore(0, 0, 0.0, 0.9), FaceScore(5, 0, None, 0.8)),
        crops=(ReportFace(0, 0.0, 0.9, HOSTILE.encode()),), provenance_status=HOSTILE,
    )
    data = DailyData(
        report_date=day,
        settings=ReportSettings(),
        runs=(ScanRun(HOSTILE, HOSTILE, HOSTILE, HOSTILE, 1, HOSTILE, 1, None, None, HOSTILE),),
        models=(ModelInForce(HOSTILE, 1, HOSTILE, (HOSTILE,), None, HOSTILE),),
        counts_by_verdict={"manipulated": 1, "error": 1},
        counts_by_reason={HOSTILE: 1},
        trend={day: {"manipulated": 1, "error": 1}},
        flagged=(video,),
        flagged_total=1,
        unjudged=(ReasonSummary("error", HOSTILE, 1, (ReasonExample(HOSTILE, HOSTILE),)),),
        listed=(JudgedVideo(HOSTILE, HOSTILE, "error", None, HOSTILE, HOSTILE, True),),
        provenance_counts={HOSTILE: 1, "declared_ai": 0},
    )
    page = tmp_path / "hostile.html"
    page.write_text(render_daily(data, datetime.now(UTC)), encoding="utf-8")
    dom = dom_of(page)
    assert dom.tags["script"] == 0 and dom.tags["img"] == 0
    assert dom.all_text.count(HOSTILE) >= 8
    assert "unreadable crop" in dom.all_text


def test_a_folder_as_the_report_path_is_refused_naming_it(spark, scanned_lake, tmp_path):
    with pytest.raises(ReportPathError, match=f"report path {tmp_path} is a folder"):
        generate_daily_report(spark, scanned_lake.config, scanned_lake.scan_date, tmp_path)
    assert not list(tmp_path.iterdir())


@pytest.fixture(scope="module")
def truth(spark, scanned_lake) -> SimpleNamespace:
    """What the tables say about the scanned day, queried without the report code."""
    schema = scanned_lake.config.lake.schema_name
    run_ids = [row.run_id for row in spark.sql(
        f"SELECT run_id FROM {schema}.scan_runs WHERE scan_date = DATE'{scanned_lake.scan_date}'"
    ).collect()]
    assert run_ids == [scanned_lake.outcome.run_id]
    verdicts = spark.sql(
        f"SELECT d.video_id, d.verdict, d.reason, d.score, v.uri FROM {schema}.verdicts d "
        f"JOIN {schema}.videos v USING (video_id) WHERE d.run_id = '{run_ids[0]}'"
    ).collect()
    faces = dict(spark.sql(
        f"SELECT video_id, count(*) FROM {schema}.face_scores WHERE run_id = '{run_ids[0]}' GROUP BY video_id"
    ).collect())
    flagged = sorted(
        (row for row in verdicts if row.verdict in ("suspicious", "manipulated")), key=lambda r: (-r.score, r.video_id)
    )
    first_example: dict[str, str] = {}  # the report lists a reason's examples in path order
    for row in sorted((row for row in verdicts if row.reason), key=lambda r: r.uri):
        first_example.setdefault(f"{row.verdict}/{row.reason}", str(local_path(row.uri)))
    return SimpleNamespace(
        run_ids=run_ids,
        by_verdict=Counter(row.verdict for row in verdicts),
        by_reason=Counter(row.reason for row in verdicts if row.reason),
        unjudged=Counter(f"{row.verdict}/{row.reason}" for row in verdicts if row.reason),
        examples=first_example,
        flagged=[row.video_id for row in flagged],
        listed=sorted((row.uri, row.video_id) for row in verdicts),
        faces=faces,
    )


@pytest.fixture(scope="module")
def reports(spark, scanned_lake, tmp_path_factory) -> SimpleNamespace:
    config, day = scanned_lake.config, scanned_lake.scan_date
    capped = generate_daily_report(
        spark, config, day, tmp_path_factory.mktemp("capped") / "capped.html", ReportSettings(max_flagged=1, max_listed=2)
    )
    full = generate_daily_report(spark, config, day)
    no_scan = generate_daily_report(spark, config, NO_SCAN_DATE)
    return SimpleNamespace(capped=capped, full=full, no_scan=no_scan)


@pytest.fixture(scope="module")
def full_dom(reports) -> Dom:
    return dom_of(reports.full.path)


def test_the_day_renders_as_a_page_with_content(reports, scanned_lake, tmp_path):
    assert reports.full.path == report_path(scanned_lake.config, scanned_lake.scan_date)
    assert_not_blank(screenshot(reports.full.path, tmp_path / "day.png"))


def test_counts_by_verdict_and_reason_are_the_tables(full_dom, truth):
    assert full_dom.count("verdict") == {verdict: truth.by_verdict.get(verdict, 0) for verdict in (
        "authentic", "suspicious", "manipulated", "not_applicable", "error"
    )}
    assert full_dom.count("reason") == dict(truth.by_reason)
    assert full_dom.count("unjudged") == dict(truth.unjudged)
    for key, example in truth.examples.items():
        assert example in full_dom.all_text, key


def test_flagged_videos_are_ranked_by_score_with_faces_and_a_timeline_of_every_face(full_dom, truth):
    assert truth.flagged, "the fixture is meant to flag some videos"
    assert [card["data-video-id"] for card in full_dom.cards] == truth.flagged
    for card in full_dom.cards:
        assert card["circles"] == truth.faces[card["data-video-id"]]
        assert 1 <= card["images"] <= ReportSettings().thumbnails_per_video


def test_the_model_and_its_thresholds_are_shown(full_dom, scanned_lake):
    thresholds = scanned_lake.model.contract.thresholds
    assert full_dom.counts["threshold"] == {
        "suspicious": f"{thresholds.suspicious:.3f}", "manipulated": f"{thresholds.manipulated:.3f}"
    }
    assert f"{scanned_lake.model.name} v{scanned_lake.model.version}" in full_dom.all_text
    assert scanned_lake.outcome.run_id in full_dom.all_text


def test_every_video_of_the_day_is_listed_by_path(full_dom, truth):
    assert full_dom.listed == [video_id for _, video_id in truth.listed]


def test_hostile_names_are_text_and_the_page_runs_and_fetches_nothing(full_dom, scanned_lake):
    assert str(local_path(scanned_lake.hostile_uri)) in full_dom.all_text
    assert full_dom.tags["script"] == 0
    assert full_dom.tags["img"] > 0
    assert all(reference.startswith("data:") for reference in full_dom.references), full_dom.references


def test_capped_lists_say_how_many_were_left_out(reports, truth):
    dom = dom_of(reports.capped.path)
    assert [card["data-video-id"] for card in dom.cards] == truth.flagged[:1]
    assert f"{len(truth.flagged) - 1} more flagged video" in dom.all_text
    assert dom.listed == [video_id for _, video_id in truth.listed[:2]]
    assert f"{len(truth.listed) - 2} more not listed" in dom.all_text


def test_a_date_without_a_scan_gives_a_page_saying_so(reports, tmp_path):
    dom = dom_of(reports.no_scan.path)
    assert f"No scan ran on {NO_SCAN_DATE}" in dom.all_text
    assert dom.cards == [] and dom.tags["script"] == 0
    assert_not_blank(screenshot(reports.no_scan.path, tmp_path / "no-scan.png"))


def test_the_reports_table_holds_one_row_per_date_the_latest(spark, scanned_lake, reports, truth):
    schema = scanned_lake.config.lake.schema_name
    rows = {row.report_date: row for row in spark.table(f"{schema}.reports").collect()}
    assert sorted(rows) == [NO_SCAN_DATE, scanned_lake.scan_date]
    day = rows[scanned_lake.scan_date]
    assert day.path == str(reports.full.path) and day.run_ids == truth.run_ids
    assert (day.flagged, day.flagged_listed, day.videos) == (
        len(truth.flagged), len(truth.flagged), sum(truth.by_verdict.values())
    )
    assert day.counts_by_verdict == dict(truth.by_verdict)
    assert day.size_bytes == reports.full.path.stat().st_size
    empty = rows[NO_SCAN_DATE]
    assert (empty.run_ids, empty.videos, empty.flagged) == ([], 0, 0)
