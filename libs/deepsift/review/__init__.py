"""Moderation: the queue of flagged verdicts and the labels view (:mod:`deepsift.review.queue`), and
the moderators' CSV round trip (:mod:`deepsift.review.decisions`)."""
