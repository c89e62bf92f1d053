"""The engine's defaults as the add-on's preferences show them.

The add-on cannot import the engine (it runs in Blender's Python, the engine in its own),
so these values are a copy of ``engine/settings.py``; tests/engine/test_settings.py fails
when the two disagree.
"""

BACKENDS = ("auto", "pytorch", "onnxruntime", "tensorrt")
BACKEND = "auto"
REFINE_MODES = ("windowed", "dense", "none")
REFINE = "windowed"
SCORE = 0.7
MIN_AREA = 0.02
MAX_SIDE = 1280
MIN_MAX_SIDE = 64
COMPRESSIONS = ("zip", "piz", "dwaa")
COMPRESSION = "zip"
DEPTHS = ("half", "float")
DEPTH = "half"
UNION_PASS = True
BACKGROUND_PASS = True
PROPAGATE = False
DETECT_EVERY = 12
TEMPORAL = 0.0
