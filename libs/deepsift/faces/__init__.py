"""Stage 3 of a scan: find faces in sampled frames and turn them into fixed-size, encoded crops.

``detector`` finds faces (YuNet when its weights can be had, OpenCV's Haar cascade otherwise),
``weights`` obtains the YuNet weights (configured path, verified cache, or a verified download),
``crops`` cuts square crops around the faces and encodes them for the ``faces`` table.
"""
