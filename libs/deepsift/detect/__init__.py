"""Detectors: the architecture registry, crop preprocessing, batched scoring, self-blended training
fakes and video-level evaluation metrics.

Every detector outputs one logit per face crop; its sigmoid is the probability that the face was
manipulated. The preprocessing contract (:mod:`deepsift.detect.contract`) saved with each model
version says what the crops must look like.
"""
