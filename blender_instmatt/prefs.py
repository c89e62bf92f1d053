"""Add-on preferences: how to start the engine and how it mattes."""

import os

import bpy
from bpy.props import EnumProperty, FloatProperty, IntProperty, StringProperty

from .client import defaults, launch, shared
from .client.process import EngineClient

ADDON_ID = __package__
ADDON_DIR = os.path.dirname(os.path.realpath(__file__))

BACKENDS = [
    ("auto", "Automatic", "TensorRT if an engine can be built for this GPU, else ONNX Runtime, else PyTorch"),
    ("tensorrt", "TensorRT", "NVIDIA TensorRT (needs an NVIDIA GPU and TensorRT in the engine's Python)"),
    ("onnxruntime", "ONNX Runtime", "ONNX Runtime on CUDA if available, else on the CPU"),
    ("pytorch", "PyTorch", "Eager PyTorch (slowest, always available)"),
]

REFINE_MODES = [
    ("windowed", "Windowed", "Refine the uncertain regions window by window (fast, the default)"),
    ("dense", "Dense", "Refine the whole frame at once (slower, more memory)"),
    ("none", "None", "No refinement: the matting network's output as it is"),
]


def _on_engine_changed(self, context):
    # A different interpreter or command takes effect at the next run.
    shared.stop_shared_engine()


class InstMattPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID

    engine_mode: EnumProperty(
        name="Start Engine With",
        items=[
            ("PYTHON", "Python Interpreter", "Run '<python> -m engine serve --stdio'"),
            ("COMMAND", "Command", "Run a full command line that serves the protocol on stdin/stdout"),
        ],
        default="PYTHON",
        update=_on_engine_changed,
    )
    engine_python: StringProperty(
        name="Engine Python",
        description=(
            "The Python interpreter of the engine's environment (the README's set-up creates "
            "<engine checkout>/.venv/bin/python). Empty: the .venv next to this add-on, "
            "when the add-on runs from the repository"
        ),
        subtype="FILE_PATH",
        default="",
        update=_on_engine_changed,
    )
    engine_command: StringProperty(
        name="Engine Command",
        description=(
            "A full command that serves the engine protocol on stdin/stdout, e.g. "
            "'/opt/instmatt/.venv/bin/python -m engine serve --stdio'"
        ),
        default="",
        update=_on_engine_changed,
    )
    engine_root: StringProperty(
        name="Engine Folder",
        description=(
            "The folder that holds the 'engine' package (working directory and PYTHONPATH "
            "of the engine). Empty: found from the engine Python"
        ),
        subtype="DIR_PATH",
        default="",
        update=_on_engine_changed,
    )
    backend: EnumProperty(name="Backend", items=BACKENDS, default=defaults.BACKEND)
    weights: StringProperty(
        name="InstMatt Weights",
        description=("An InstMatt weights file you already have (the authors' best_model.pth, or .safetensors). "
                     "Empty: the authors' checkpoint once Download Models fetched it, else the engine's toy weights"),
        subtype="FILE_PATH",
        default="",
    )
    detector_weights: StringProperty(
        name="Detector Weights",
        description=("A Mask R-CNN file you already have (maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth). "
                     "Empty: the one Download Models fetches"),
        subtype="FILE_PATH",
        default="",
    )
    score: FloatProperty(
        name="Detector Score", description="Minimum detection score for a person",
        default=defaults.SCORE, min=0.0, max=1.0,
    )
    min_area: FloatProperty(
        name="Minimum Area", description="Smallest person kept, as a fraction of the frame's area",
        default=defaults.MIN_AREA, min=0.0, max=1.0, precision=3,
    )
    max_side: IntProperty(
        name="Max Side", description="Frames are matted with their longer side at most this many pixels",
        default=defaults.MAX_SIDE, min=defaults.MIN_MAX_SIDE, max=16384,
    )
    refine: EnumProperty(name="Refine", items=REFINE_MODES, default=defaults.REFINE)
    start_timeout: FloatProperty(
        name="Start-up Timeout", description="Seconds the engine may take to start (it loads torch)",
        default=180.0, min=5.0, max=3600.0, subtype="TIME_ABSOLUTE",
    )

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        col = layout.column(heading="Engine")
        col.prop(self, "engine_mode")
        if self.engine_mode == "PYTHON":
            col.prop(self, "engine_python")
            if not self.engine_python:
                col.label(text=f"Default: {default_python_hint()}", icon="INFO")
        else:
            col.prop(self, "engine_command")
        col.prop(self, "engine_root")
        col.prop(self, "start_timeout")
        row = col.row(align=True)
        row.operator("instmatt.check_engine", icon="PLAY")
        row.operator("instmatt.stop_engine", icon="CANCEL")
        row.operator("instmatt.open_engine_log", icon="TEXT")
        from .model_ops import draw_models_box

        draw_models_box(layout, self)
        col = layout.column(heading="Matting")
        col.prop(self, "backend")
        col.prop(self, "max_side")
        col.prop(self, "refine")
        col = layout.column(heading="Detector")
        col.prop(self, "score")
        col.prop(self, "min_area")


class _Defaults:
    """The preferences' defaults, when the add-on's preferences are not reachable."""

    engine_mode = "PYTHON"
    engine_python = ""
    engine_command = ""
    engine_root = ""
    backend = defaults.BACKEND
    weights = ""
    detector_weights = ""
    score = defaults.SCORE
    min_area = defaults.MIN_AREA
    max_side = defaults.MAX_SIDE
    refine = defaults.REFINE
    start_timeout = 180.0


def get_prefs(context=None):
    context = context or bpy.context
    addon = context.preferences.addons.get(ADDON_ID)
    if addon is not None and addon.preferences is not None:
        return addon.preferences
    return _Defaults()


def default_python_hint() -> str:
    root = launch.find_engine_root(ADDON_DIR)
    if root:
        return launch.default_python(root)
    return "none found: set the engine Python"


def user_path(sub: str) -> str:
    """A folder of this add-on's user data (engine caches, logs, mattes of unsaved files)."""
    try:
        return bpy.utils.extension_path_user(ADDON_ID, path=sub, create=True)
    except (ValueError, AttributeError):  # not loaded as an extension (legacy add-on)
        path = os.path.join(bpy.utils.user_resource("DATAFILES", path="instmatt"), sub)
        os.makedirs(path, exist_ok=True)
        return path


def engine_launch(prefs) -> tuple[list[str], str | None, dict]:
    """``(argv, cwd, env)`` for the engine process, from the preferences."""
    python = bpy.path.abspath(prefs.engine_python) if prefs.engine_python else ""
    command = prefs.engine_command if prefs.engine_mode == "COMMAND" else ""
    root = bpy.path.abspath(prefs.engine_root) if prefs.engine_root else ""
    argv, cwd, env = launch.build_command(
        python=python, command=command, engine_root=root, addon_dir=ADDON_DIR,
        offline=not getattr(bpy.app, "online_access", True),  # Blender's Allow Online Access
    )
    env["INSTMATT_CACHE_DIR"] = user_path("engines")
    return argv, cwd, env


def engine_options(prefs, overwrite: bool = False) -> dict:
    options = {
        "max_side": int(prefs.max_side),
        "refine": prefs.refine,
        "score": round(float(prefs.score), 4),
        "min_area": round(float(prefs.min_area), 5),
        "backend": prefs.backend,
        "overwrite": bool(overwrite),
    }
    if prefs.weights:
        options["weights"] = bpy.path.abspath(prefs.weights)
    if prefs.detector_weights:
        options["detector_weights"] = bpy.path.abspath(prefs.detector_weights)
    return options


def engine_log_path() -> str:
    """Where the engine's stderr goes (the Open Engine Log button shows it)."""
    return os.path.join(user_path("logs"), "engine.log")


def get_engine(prefs) -> EngineClient:
    """The warm engine, started (or restarted) as the preferences say."""
    argv, cwd, env = engine_launch(prefs)
    return shared.shared_engine(argv, cwd, env, log_path=engine_log_path())


classes = (InstMattPreferences,)
