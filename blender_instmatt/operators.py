"""The add-on's operators: Matte People, Load Mattes, Check Engine, Stop Engine, Open Engine Log.

From a script or ``blender -b`` Matte People runs to completion inside ``execute``.
From the UI it is modal: a 0.1 s window timer polls the engine's events (a reader thread
fills the queue), the progress bar and the status bar show frames done and time left,
Esc cancels, and the rest of Blender stays usable.  Both paths share :class:`run.Run`;
:mod:`planning` turns the operator's properties into one.
"""

import os
import traceback

import bpy
from bpy.props import BoolProperty, EnumProperty, IntProperty, StringProperty

from . import compositor, prefs, sources
from .client import models
from .client.frames import frame_path, frames_on_disk
from .client.matte_files import inspect_mattes
from .client.protocol import EngineError
from .client.shared import stop_shared_engine
from .planning import PlanError, plan
from .properties import CARRY_HELP, DETECT_EVERY_HELP, PATH_OPTIONS, PROPAGATE_HELP, SOURCES
from .run import Run, active_run, forget, set_active

SOURCE_ITEMS = [("AUTO", "Automatic", "The named image or clip, else the editor's, else the panel's choice")] + SOURCES


class INSTMATT_OT_matte_people(bpy.types.Operator):
    """Compute one alpha matte per person and put them into the compositor"""

    bl_idname = "instmatt.matte_people"
    bl_label = "Matte People"
    bl_options = {"REGISTER"}

    source: EnumProperty(name="Source", items=SOURCE_ITEMS, default="AUTO")
    image: StringProperty(name="Image", description="Name of the image (still, sequence or movie) to matte")
    clip: StringProperty(name="Clip", description="Name of the movie clip to matte")
    guidance: EnumProperty(
        name="Guidance",
        items=[
            ("AUTO", "Automatic", "A mask or ID images when named, else the panel's choice"),
            ("DETECTOR", "Detector", "Find people automatically"),
            ("MASK", "Mask", "A Mask datablock, one layer per person"),
            ("INDEX", "ID Images", "Integer-ID images, one per frame"),
        ],
        default="AUTO",
    )
    mask: StringProperty(name="Mask", description="Name of the Mask datablock (one layer per person)")
    index_path: StringProperty(name="ID Images", description="Frame pattern of ID images (# = one digit)",
                               options=PATH_OPTIONS)
    frame_start: IntProperty(name="Start", description="First scene frame (default: the scene's)")
    frame_end: IntProperty(name="End", description="Last scene frame (default: the scene's)")
    output: StringProperty(name="Output", description="Frame pattern or folder of the EXR files", subtype="FILE_PATH",
                           options=PATH_OPTIONS)
    overwrite: BoolProperty(name="Overwrite", description="Recompute frames that exist already")
    propagate: BoolProperty(name="Propagate From Keyframes", description=PROPAGATE_HELP)
    carry_detections: BoolProperty(name="Carry Between Detections", description=CARRY_HELP)
    detect_every: IntProperty(name="Detect Every", min=0, description=DETECT_EVERY_HELP + " (default: the panel's)")
    setup_compositor: BoolProperty(name="Example Set-up", default=True,
                                   description="Add the example compositor set-up")

    _timer = None
    _run = None

    @classmethod
    def poll(cls, context):
        return context.scene is not None

    # -- shared

    def _begin(self, context) -> "Run | None":
        if active_run() is not None:
            self.report({"ERROR"}, "InstMatt is already running (Esc in its window cancels it)")
            return None
        try:
            run = plan(self, context)
        except PlanError as exc:
            self.report({"ERROR"}, f"InstMatt: {exc}")
            return None
        except Exception as exc:  # a bug: say so in one line, keep Blender going
            traceback.print_exc()
            self.report({"ERROR"}, f"InstMatt: internal error ({type(exc).__name__}: {exc}); see the console")
            return None
        try:
            run.start(context)
        except EngineError as exc:
            run.cleanup()
            self.report({"ERROR"}, f"InstMatt: {exc}")
            return None
        except Exception as exc:
            run.cleanup()
            traceback.print_exc()
            self.report({"ERROR"}, f"InstMatt: cannot start the engine ({type(exc).__name__}: {exc})")
            return None
        set_active(run)
        settings = getattr(context.scene, "instmatt", None)
        if settings is not None:
            settings.status = "Running"
        return run

    def _end(self, context, run) -> set[str]:
        try:
            result = run.finish(context)
        finally:
            forget(run)
        for level, message in run.reports:
            self.report({level}, message)
        if "FINISHED" in result and not bpy.app.background:
            try:  # the compositor changed: make it one undo step
                bpy.ops.ed.undo_push(message="Matte People")
            except RuntimeError:
                pass
        return result

    # -- script / background: synchronous

    def execute(self, context):
        run = self._begin(context)
        if run is None:
            return {"CANCELLED"}
        run.wait(on_progress=run.console if bpy.app.background else None)
        return self._end(context, run)

    # -- UI: modal

    def invoke(self, context, event):
        if bpy.app.background or context.window is None:
            return self.execute(context)
        run = self._begin(context)
        if run is None:
            return {"CANCELLED"}
        self._run = run
        self._start_ui(context)
        context.window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        run = self._run
        if event.type == "ESC" and event.value == "PRESS":
            # Rasterising stops at once; the engine after the frame in hand (a second Esc: at once).
            run.cancel()
            self._show(context)
            if not run.finished:
                return {"RUNNING_MODAL"}
        elif event.type != "TIMER":
            return {"PASS_THROUGH"}
        run.poll()
        self._show(context)
        if run.finished:
            self._stop_ui(context)
            return self._end(context, run)
        return {"PASS_THROUGH"}

    def cancel(self, context):
        # Blender ends the modal operator (file loaded, window closed): stop the job.
        run = self._run
        if run is not None and not run.closed:
            run.cancel()
            self._stop_ui(context)
            self._end(context, run)

    def _show(self, context):
        run = self._run
        wm = context.window_manager
        wm.progress_update(int(run.fraction * 1000))
        text = run.status_text()
        workspace = getattr(context, "workspace", None)
        if workspace is not None:
            workspace.status_text_set(text)
        settings = getattr(context.scene, "instmatt", None)
        if settings is not None and settings.status != text:
            settings.status = text
        for area in getattr(context.screen, "areas", ()):
            if area.type in {"IMAGE_EDITOR", "CLIP_EDITOR", "NODE_EDITOR", "STATUSBAR"}:
                area.tag_redraw()

    def _start_ui(self, context):
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.1, window=context.window)
        wm.progress_begin(0, 1000)
        self._show(context)

    def _stop_ui(self, context):
        wm = context.window_manager
        if self._timer is not None:
            wm.event_timer_remove(self._timer)
            self._timer = None
        wm.progress_end()
        workspace = getattr(context, "workspace", None)
        if workspace is not None:
            workspace.status_text_set(None)


class INSTMATT_OT_check_engine(bpy.types.Operator):
    """Start the engine (if needed) and report its version, backend and weights"""

    bl_idname = "instmatt.check_engine"
    bl_label = "Check Engine"

    def execute(self, context):
        settings = prefs.get_prefs(context)
        try:
            client = prefs.get_engine(settings)
            hello = client.wait_hello(timeout=float(settings.start_timeout))
            client.request({"type": "ping"}, "pong", timeout=30.0)
        except EngineError as exc:
            self.report({"ERROR"}, f"InstMatt: {exc}")
            return {"CANCELLED"}
        models.remember(hello)
        weights = os.path.basename(str(hello.get("weights") or "built-in"))
        if hello.get("weights_toy"):
            weights += f" = {models.TOY_TEXT}"
        self.report({"INFO"}, "InstMatt engine {} ready: backend {}, weights {} (pid {})".format(
            hello.get("engine_version", "?"), hello.get("backend", "?"), weights, hello.get("pid", client.pid)))
        return {"FINISHED"}


class INSTMATT_OT_stop_engine(bpy.types.Operator):
    """Shut the engine process down (it starts again with the next run)"""

    bl_idname = "instmatt.stop_engine"
    bl_label = "Stop Engine"

    def execute(self, context):
        if active_run() is not None:
            self.report({"ERROR"}, "InstMatt is running: cancel it first (Esc)")
            return {"CANCELLED"}
        stop_shared_engine()
        self.report({"INFO"}, "InstMatt engine stopped")
        return {"FINISHED"}


class INSTMATT_OT_open_engine_log(bpy.types.Operator):
    """Show the engine's log (its stderr: what it did, and why it failed) in a Text Editor"""

    bl_idname = "instmatt.open_engine_log"
    bl_label = "Open Engine Log"

    TEXT_NAME = "InstMatt Engine Log"

    def execute(self, context):
        path = prefs.engine_log_path()
        try:
            with open(path, encoding="utf-8", errors="replace") as log:
                content = log.read()
        except OSError:
            self.report({"WARNING"}, f"InstMatt: no engine log yet ({path}); it starts with the engine")
            return {"CANCELLED"}
        text = bpy.data.texts.get(self.TEXT_NAME) or bpy.data.texts.new(self.TEXT_NAME)
        text.clear()
        text.write(content)  # a snapshot: the file keeps growing while the engine runs
        shown = False
        for area in getattr(context.screen, "areas", []) or []:
            if area.type == "TEXT_EDITOR":
                area.spaces.active.text = text
                shown = True
                break
        if not shown and not bpy.app.background:
            bpy.ops.wm.path_open(filepath=path)  # no Text Editor open: the system's viewer
        self.report({"INFO"}, f"InstMatt engine log: {path} (text '{self.TEXT_NAME}')")
        return {"FINISHED"}


class INSTMATT_OT_load_mattes(bpy.types.Operator):
    """Load matte EXR files written earlier (e.g. by a batch run) into the compositor"""

    bl_idname = "instmatt.load_mattes"
    bl_label = "Load Mattes"
    bl_options = {"REGISTER", "UNDO"}

    filepath: StringProperty(name="Mattes", subtype="FILE_PATH", options=PATH_OPTIONS,
                             description="Frame pattern of the EXR files (default: the last run's)")
    source: EnumProperty(name="Source", items=SOURCE_ITEMS, default="AUTO")
    image: StringProperty(name="Image")
    clip: StringProperty(name="Clip")
    setup_compositor: BoolProperty(name="Example Set-up", default=True)

    def execute(self, context):
        settings = getattr(context.scene, "instmatt", None)
        pattern = bpy.path.abspath(self.filepath) if self.filepath else (settings.last_output if settings else "")
        if not pattern:
            self.report({"ERROR"}, "InstMatt: no mattes to load (name the EXR frame pattern)")
            return {"CANCELLED"}
        try:
            source = sources.resolve(context, self.source, self.image, self.clip)
        except sources.SourceError as exc:
            self.report({"ERROR"}, f"InstMatt: {exc}")
            return {"CANCELLED"}
        source.cleanup()
        frames = frames_on_disk(pattern) if "#" in pattern else []
        if "#" in pattern and not frames:
            self.report({"ERROR"}, f"InstMatt: no files match {pattern}")
            return {"CANCELLED"}
        if frames:
            paths = {f: frame_path(pattern, f) for f in frames}
        elif os.path.isfile(pattern):
            paths = {1: pattern}
        else:
            self.report({"ERROR"}, f"InstMatt: no such file {pattern}")
            return {"CANCELLED"}
        single = source.single or len(paths) == 1 and not frames
        first, last = min(paths), max(paths)
        widest, _, warning = inspect_mattes(paths)
        if warning:
            self.report({"WARNING"}, f"InstMatt: {warning}")
        image = compositor.load_mattes(paths, f"InstMatt {source.name}", single, first=widest)
        nodes = compositor.wire(context.scene, source, image, first - source.offset, first, last - first + 1, [],
                                example=self.setup_compositor)
        people = compositor.people_sockets(nodes["mattes"])
        if settings is not None:
            settings.last_output = pattern
            settings.last_people = ", ".join(people)
        self.report({"INFO"}, f"InstMatt: loaded {len(paths)} frames, people: {', '.join(people) or 'none'}")
        return {"FINISHED"}


classes = (INSTMATT_OT_matte_people, INSTMATT_OT_check_engine, INSTMATT_OT_stop_engine, INSTMATT_OT_open_engine_log,
           INSTMATT_OT_load_mattes)
