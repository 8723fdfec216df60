"""Verdicts: from face scores to a video score and a label, by named rules and the model's thresholds."""
