"""Media handling for untrusted uploads: content ids and probing (``probe``), keyframe-aware frame
sampling (``sampling``) and crash-, hang- and memory-safe decoding in a worker process (``isolation``).
"""
