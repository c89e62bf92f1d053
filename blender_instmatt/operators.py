"""The "Matte People" operator and its helpers.

From a script or ``blender -b`` the operator runs to completion inside ``execute``.
From the UI it is modal: a 0.1 s window timer polls the engine's events (a reader thread
fills the queue), the progress bar and the status bar show frames done and time left,
Esc cancels, and the rest of Blender stays usable.  Both paths share :class:`Run`.
"""

import os
import shutil
import tempfile
import time
import traceback

import bpy
from bpy.props import BoolProperty, EnumProperty, IntProperty, StringProperty

from . import compositor, engine_client, exrheader, masks, prefs, sources
from .properties import PATH_OPTIONS, SOURCES

OUTPUT_NAME = "instmatt.####.exr"
SOURCE_ITEMS = [("AUTO", "Automatic", "The named image or clip, else the editor's, else the panel's choice")] + SOURCES

# The run in progress (one at a time per Blender session).
_active: "Run | None" = None


def active_run() -> "Run | None":
    return _active if _active is not None and not _active.closed else None


class PlanError(Exception):
    """The operator cannot start; the message is one line for the artist."""


class Run:
    """Everything about one matte job: source, request, temporary files, the engine job."""

    def __init__(self, context, source: sources.Source, scene_range, output_pattern: str, request: dict,
                 example: bool):
        self.scene = context.scene
        self.source = source
        self.scene_range = scene_range  # (first, last) scene frames, None for a still
        self.output_pattern = output_pattern
        self.request = request
        self.example = example
        self.temp_dirs: list[str] = []
        self.job: engine_client.MatteJob | None = None
        self.closed = False
        self.started = time.monotonic()
        self.reports: list[tuple[str, str]] = []  # (level, message) to report at the end
        self.result_nodes: dict = {}
        self._last_line = ""

    # -- engine

    def start(self, context) -> None:
        """Start (or reuse) the engine and queue the request; raises EngineError."""
        settings = prefs.get_prefs(context)
        client = prefs.get_engine(settings)
        self.job = engine_client.MatteJob(client, self.request, start_timeout=float(settings.start_timeout))

    def console(self) -> None:
        """Progress lines on stdout for headless runs."""
        if self.job.finished:
            return
        line = self.job.status_text().replace("  (Esc to cancel)", "")
        if line != self._last_line:
            print(line, flush=True)
            self._last_line = line

    # -- the end

    def finish(self, context) -> set[str]:
        """Clean up, wire the compositor when the job succeeded, and collect reports."""
        job = self.job
        self.cleanup()
        settings = getattr(self.scene, "instmatt", None)
        for warning in job.warnings[:5]:
            self.reports.append(("WARNING", f"InstMatt: {warning}"))
        if len(job.warnings) > 5:
            self.reports.append(("WARNING", f"InstMatt: {len(job.warnings) - 5} more frame warnings"))
        if job.state == job.DONE:
            try:
                people = self.load_results(context)
            except Exception as exc:  # never a traceback into the artist's face
                self.reports.append(("ERROR", f"InstMatt: the mattes were written but could not be loaded: {exc}"))
                self._status(settings, "Failed to load the mattes")
                return {"CANCELLED"}
            frames = len(job.frames)
            text = f"InstMatt: {frames} frame{'s' * (frames != 1)} matted, " + (
                f"{len(people)} people: {', '.join(people)}" if people else "nobody found")
            self.reports.append(("INFO", text))
            self._status(settings, text.replace("InstMatt: ", ""))
            return {"FINISHED"}
        if job.state == job.CANCELLED:
            text = (f"InstMatt: cancelled after {len(job.frames)} of {job.total or '?'} frames; "
                    "finished frames are kept and a re-run resumes")
            self.reports.append(("WARNING", text))
            self._status(settings, "Cancelled")
            return {"CANCELLED"}
        self.reports.append(("ERROR", f"InstMatt: {job.error}"))
        self._status(settings, f"Failed: {job.error}")
        return {"CANCELLED"}

    def _status(self, settings, text):
        if settings is not None:
            settings.status = text[:250]

    def load_results(self, context) -> list[str]:
        job = self.job
        paths = dict(job.frames)
        on_disk = sources.frames_on_disk(self.output_pattern)
        if self.source.single:
            if not paths:
                raise RuntimeError("the engine reported no frame")
        else:
            for frame in on_disk:
                paths.setdefault(frame, self.output_pattern.replace(
                    "#" * self.output_pattern.count("#"), f"{frame:0{self.output_pattern.count('#')}d}"))
        if not paths:
            raise RuntimeError("the engine wrote no frame")
        first_image = min(paths)
        last_image = max(paths)
        count = last_image - first_image + 1
        first_scene = first_image - self.source.offset
        widest, _, warning = inspect_mattes(paths)
        if warning:
            self.reports.append(("WARNING", f"InstMatt: {warning}"))
        image = compositor.load_mattes(paths, f"InstMatt {self.source.name}", self.source.single, first=widest)
        nodes = compositor.wire(self.scene, self.source, image, first_scene, first_image, count, job.people,
                                example=self.example)
        self.result_nodes = nodes
        people = compositor.people_sockets(nodes["mattes"]) or list(job.people)
        settings = getattr(self.scene, "instmatt", None)
        if settings is not None:
            settings.last_output = self.output_pattern
            settings.last_people = ", ".join(people)
        return people

    def cleanup(self) -> None:
        self.source.cleanup()
        for folder in self.temp_dirs:
            shutil.rmtree(folder, ignore_errors=True)
        self.temp_dirs.clear()
        self.closed = True


def inspect_mattes(paths: dict[int, str]) -> tuple[int, list[str], str]:
    """``(widest frame, people, warning)`` of a shot's matte files, from their headers.

    Blender makes the Image node's sockets from the one file the image opens, so it
    should open the frame with the most people; and where a frame lacks a person's
    layer, Blender's Image node gives another layer's pixels instead of zero, which the
    warning points out (the engine should write every person's layer in every frame).
    """
    per_frame: dict[int, list[str]] = {}
    unreadable = []
    for frame, path in sorted(paths.items()):
        try:
            per_frame[frame] = exrheader.people(path)
        except (OSError, exrheader.ExrHeaderError):
            unreadable.append(frame)
    people: list[str] = []
    for names in per_frame.values():
        people.extend(n for n in names if n not in people)
    people.sort(key=lambda name: (len(name), name))
    widest = max(per_frame, key=lambda f: (len(per_frame[f]), -f)) if per_frame else min(paths)
    problems = []
    if unreadable:
        problems.append(f"{len(unreadable)} unreadable EXR file(s) (frame {unreadable[0]}...)")
    missing: dict[str, list[int]] = {}
    for frame, names in per_frame.items():
        for person in people:
            if person not in names:
                missing.setdefault(person, []).append(frame)
    if missing:
        listed = "; ".join(f"{person}: {len(frames)} frame{'s' * (len(frames) != 1)} from {frames[0]}"
                           for person, frames in missing.items())
        problems.append(f"some frames lack a person's layer ({listed}); Blender shows another person's "
                        "alpha there instead of zero")
    return widest, people, "; ".join(problems)


# --------------------------------------------------------------------------- planning


def _output_pattern(context, source, explicit: str) -> str:
    if explicit:
        path = bpy.path.abspath(explicit)
        if "#" not in os.path.basename(path):
            path = os.path.join(path, OUTPUT_NAME)
        return os.path.normpath(path)
    settings = getattr(context.scene, "instmatt", None)
    folder = settings.output_dir if settings is not None else "//instmatt/"
    if folder.startswith("//") and not bpy.data.filepath:
        folder = prefs.user_path("mattes")  # unsaved file: no '//' to resolve against
    folder = bpy.path.abspath(folder)
    return os.path.normpath(os.path.join(folder, bpy.path.clean_name(source.name), OUTPUT_NAME))


def plan(op, context) -> Run:
    """Turn the operator's properties (and the scene's InstMatt settings) into a Run."""
    scene = context.scene
    settings = getattr(scene, "instmatt", None)
    try:
        source = sources.resolve(context, op.source, op.image, op.clip)
    except sources.SourceError as exc:
        raise PlanError(str(exc)) from None

    # Frame range, in scene frames
    scene_range = None
    if not source.single:
        if op.properties.is_property_set("frame_start") or op.properties.is_property_set("frame_end"):
            first = op.frame_start if op.properties.is_property_set("frame_start") else scene.frame_start
            last = op.frame_end if op.properties.is_property_set("frame_end") else scene.frame_end
        elif settings is not None and not settings.use_scene_range:
            first, last = settings.frame_start, settings.frame_end
        else:
            first, last = scene.frame_start, scene.frame_end
        if last < first:
            raise PlanError(f"The frame range {first}-{last} is empty")
        if source.available is not None:
            lo, hi = source.available
            if source.source_frame(first) < lo or source.source_frame(last) > hi:
                raise PlanError(
                    f"Scene frames {first}-{last} need files {source.source_frame(first)}-"
                    f"{source.source_frame(last)} of '{source.name}', but only {lo}-{hi} exist")
        scene_range = (first, last)

    output = _output_pattern(context, source, op.output)
    os.makedirs(os.path.dirname(output), exist_ok=True)

    overwrite = op.overwrite if op.properties.is_property_set("overwrite") else \
        bool(settings.overwrite) if settings is not None else False
    request = {
        "type": "matte",
        "input": source.input,
        "output": output,
        "options": prefs.engine_options(prefs.get_prefs(context), overwrite=overwrite),
    }
    if scene_range is not None:
        request["frames"] = [source.source_frame(scene_range[0]), source.source_frame(scene_range[1])]

    example = op.setup_compositor if op.properties.is_property_set("setup_compositor") else \
        bool(settings.setup_example) if settings is not None else True
    run = Run(context, source, scene_range, output, request, example)

    # Guidance
    guidance = op.guidance
    mask_name = op.mask
    if guidance == "AUTO":
        if mask_name:
            guidance = "MASK"
        elif op.index_path:
            guidance = "INDEX"
        elif settings is not None:
            guidance = settings.guidance
        else:
            guidance = "DETECTOR"
    try:
        if guidance == "MASK":
            mask = masks.find_mask(mask_name) if mask_name else (settings.mask if settings is not None else None)
            if mask is None:
                raise PlanError("Mask guidance needs a Mask datablock (one layer per person)")
            folder = tempfile.mkdtemp(prefix="instmatt_masks_")
            run.temp_dirs.append(folder)
            if scene_range is None:
                frames = [(scene.frame_current, None)]
            else:
                frames = [(f, source.source_frame(f)) for f in range(scene_range[0], scene_range[1] + 1)]
            masks.write_guidance(context, mask, frames, source.size, folder)
            request["guidance"] = {"kind": "masks", "path": folder}
        elif guidance == "INDEX":
            path = op.index_path or (settings.index_path if settings is not None else "")
            if not path:
                raise PlanError("ID-image guidance needs a frame pattern of ID images")
            request["guidance"] = {"kind": "index", "path": bpy.path.abspath(path)}
        else:
            request["guidance"] = {"kind": "detector"}
    except (KeyError, ValueError) as exc:
        run.cleanup()
        raise PlanError(str(exc.args[0]) if exc.args else str(exc)) from None
    except BaseException:
        run.cleanup()
        raise
    return run


# --------------------------------------------------------------------------- operators


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
    setup_compositor: BoolProperty(name="Example Set-up", default=True,
                                   description="Add the example compositor set-up")

    _timer = None
    _run = None

    @classmethod
    def poll(cls, context):
        return context.scene is not None

    # -- shared

    def _begin(self, context) -> "Run | None":
        global _active
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
        except engine_client.EngineError as exc:
            run.cleanup()
            self.report({"ERROR"}, f"InstMatt: {exc}")
            return None
        except Exception as exc:
            run.cleanup()
            traceback.print_exc()
            self.report({"ERROR"}, f"InstMatt: cannot start the engine ({type(exc).__name__}: {exc})")
            return None
        _active = run
        settings = getattr(context.scene, "instmatt", None)
        if settings is not None:
            settings.status = "Running"
        return run

    def _end(self, context, run) -> set[str]:
        global _active
        try:
            result = run.finish(context)
        finally:
            if _active is run:
                _active = None
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
        background = bpy.app.background
        try:
            run.job.run(on_progress=(lambda job: run.console()) if background else None)
        except KeyboardInterrupt:
            run.job.cancel()
            try:
                run.job.run()
            except KeyboardInterrupt:
                run.job.cancel(force=True)
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
            # A second Esc while cancelling stops the engine at once.
            run.job.cancel(force=run.job.state == run.job.CANCELLING)
            self._show(context)
            if not run.job.finished:
                return {"RUNNING_MODAL"}
        elif event.type != "TIMER":
            return {"PASS_THROUGH"}
        run.job.poll(0.0)
        self._show(context)
        if run.job.finished:
            self._stop_ui(context)
            return self._end(context, run)
        return {"PASS_THROUGH"}

    def cancel(self, context):
        # Blender ends the modal operator (file loaded, window closed): stop the job.
        run = self._run
        if run is not None and not run.closed:
            run.job.cancel()
            self._stop_ui(context)
            self._end(context, run)

    def _show(self, context):
        run = self._run
        wm = context.window_manager
        wm.progress_update(int(run.job.fraction * 1000))
        text = run.job.status_text()
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
        except engine_client.EngineError as exc:
            self.report({"ERROR"}, f"InstMatt: {exc}")
            return {"CANCELLED"}
        self.report({"INFO"}, "InstMatt engine {} ready: backend {}, weights {} (pid {})".format(
            hello.get("engine_version", "?"), hello.get("backend", "?"),
            os.path.basename(str(hello.get("weights") or "built-in")), hello.get("pid", client.pid)))
        return {"FINISHED"}


class INSTMATT_OT_stop_engine(bpy.types.Operator):
    """Shut the engine process down (it starts again with the next run)"""

    bl_idname = "instmatt.stop_engine"
    bl_label = "Stop Engine"

    def execute(self, context):
        if active_run() is not None:
            self.report({"ERROR"}, "InstMatt is running: cancel it first (Esc)")
            return {"CANCELLED"}
        engine_client.stop_shared_engine()
        self.report({"INFO"}, "InstMatt engine stopped")
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
        frames = sources.frames_on_disk(pattern) if "#" in pattern else []
        if "#" in pattern and not frames:
            self.report({"ERROR"}, f"InstMatt: no files match {pattern}")
            return {"CANCELLED"}
        if frames:
            digits = pattern.count("#")
            paths = {f: pattern.replace("#" * digits, f"{f:0{digits}d}") for f in frames}
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


classes = (INSTMATT_OT_matte_people, INSTMATT_OT_check_engine, INSTMATT_OT_stop_engine, INSTMATT_OT_load_mattes)


def cancel_active() -> None:
    """On unregister: stop a running job and forget it."""
    global _active
    run, _active = _active, None
    if run is not None and not run.closed:
        if run.job is not None:
            run.job.cancel(force=True)
        run.cleanup()
