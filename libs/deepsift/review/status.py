"""The statuses of a ``moderation_queue`` item, apart from the queue's code so that the analysts' views
(:mod:`deepsift.lake.views`, which the queue itself reads) can name them too."""

from __future__ import annotations

from enum import StrEnum


class ReviewStatus(StrEnum):
    """The value of ``moderation_queue.status``: pending, or a moderator's decision."""

    PENDING = "pending"
    CONFIRMED_FAKE = "confirmed_fake"
    CONFIRMED_REAL = "confirmed_real"
    DISMISSED = "dismissed"
    """Not a question for this queue (say, a cartoon or an animal face): no training label."""
