"""The preferences' Models box: its operators (Download Models, Refresh) and its drawing.

Download Models runs the fetch inside the engine process (``fetch_models``), with the
bytes in the status bar and Esc to cancel (the partial file stays, so the next press
resumes). It is greyed out, with the reason, while Blender's Allow Online Access is off;
the engine then runs with ``--offline`` too.
"""

from __future__ import annotations

import bpy

from . import prefs
from .client import models
from .client.models import ModelFetch
from .client.protocol import EngineError

_active: "ModelFetch | None" = None


def online() -> bool:
    return bool(getattr(bpy.app, "online_access", True))


def draw_models_box(layout, settings) -> None:
    box = layout.box()
    box.label(text="Models", icon="FILE_BLEND")
    status = models.last_models
    if status.get("models"):
        for name, text, icon in models.model_rows(status["models"]):
            row = box.row()
            row.label(text=name)
            row.label(text=text, icon=icon)
        if status.get("cache"):
            box.label(text=f"Cache: {status['cache']}")
        if status.get("toy"):
            box.label(text=models.TOY_TEXT, icon="INFO")
    else:
        box.label(text="Status unknown: press Refresh (starts the engine)", icon="QUESTION")
    row = box.row(align=True)
    download = row.row(align=True)
    download.enabled = online() and _active is None
    download.operator("instmatt.download_models", icon="IMPORT")
    row.operator("instmatt.refresh_models", icon="FILE_REFRESH", text="Refresh")
    if not online():
        box.label(text=models.OFFLINE_REASON, icon="INTERNET_OFFLINE")
    box.prop(settings, "weights")
    box.prop(settings, "detector_weights")


class INSTMATT_OT_refresh_models(bpy.types.Operator):
    """Ask the engine which models are cached"""

    bl_idname = "instmatt.refresh_models"
    bl_label = "Refresh Models"

    def execute(self, context):
        settings = prefs.get_prefs(context)
        try:
            client = prefs.get_engine(settings)
            client.wait_hello(timeout=float(settings.start_timeout))
            models.remember(client.request({"type": "models"}, "models", timeout=30.0))
        except EngineError as exc:
            self.report({"ERROR"}, f"InstMatt: {exc}")
            return {"CANCELLED"}
        missing = [m["name"] for m in models.last_models["models"] if m.get("status") == "missing"]
        self.report({"INFO"}, "InstMatt models: " + (f"missing {', '.join(missing)}" if missing else "all present"))
        return {"FINISHED"}


class INSTMATT_OT_download_models(bpy.types.Operator):
    """Download, verify and cache the person detector and the authors' InstMatt weights (in the engine)"""

    bl_idname = "instmatt.download_models"
    bl_label = "Download Models"

    _timer = None
    _fetch: "ModelFetch | None" = None

    @classmethod
    def poll(cls, context):
        if not online():
            cls.poll_message_set(models.OFFLINE_REASON)
            return False
        if _active is not None:
            cls.poll_message_set("a download is already running")
            return False
        return True

    def _begin(self, context) -> "ModelFetch | None":
        global _active
        settings = prefs.get_prefs(context)
        try:
            fetch = ModelFetch(prefs.get_engine(settings), start_timeout=float(settings.start_timeout))
        except EngineError as exc:
            self.report({"ERROR"}, f"InstMatt: {exc}")
            return None
        _active = fetch
        return fetch

    def _end(self, fetch: ModelFetch) -> set[str]:
        global _active
        _active = None
        if fetch.state == fetch.FAILED:
            self.report({"ERROR"}, f"InstMatt: {fetch.error}")
            return {"CANCELLED"}
        if fetch.state == fetch.CANCELLED:
            self.report({"WARNING"}, "InstMatt: download cancelled; press Download Models again to resume")
            return {"CANCELLED"}
        rows = ", ".join(f"{name} {text}" for name, text, _ in models.model_rows(fetch.models))
        self.report({"INFO"}, f"InstMatt models: {rows}")
        return {"FINISHED"}

    def execute(self, context):
        fetch = self._begin(context)
        if fetch is None:
            return {"CANCELLED"}
        try:
            fetch.run(on_progress=(lambda f: print(f.status_text())) if bpy.app.background else None)
        except KeyboardInterrupt:
            fetch.cancel()
            fetch.run()
        return self._end(fetch)

    def invoke(self, context, event):
        if bpy.app.background or context.window is None:
            return self.execute(context)
        fetch = self._begin(context)
        if fetch is None:
            return {"CANCELLED"}
        self._fetch = fetch
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.1, window=context.window)
        wm.progress_begin(0, 1000)
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        fetch = self._fetch
        if event.type == "ESC" and event.value == "PRESS":
            fetch.cancel()
        elif event.type != "TIMER":
            return {"PASS_THROUGH"}
        fetch.poll(0.0)
        context.window_manager.progress_update(int(fetch.fraction * 1000))
        if context.workspace is not None:
            context.workspace.status_text_set(fetch.status_text())
        for area in getattr(context.screen, "areas", ()):
            if area.type in {"PREFERENCES", "STATUSBAR"}:
                area.tag_redraw()
        if not fetch.finished:
            return {"PASS_THROUGH"}
        self._stop_ui(context)
        return self._end(fetch)

    def cancel(self, context):
        if self._fetch is not None and not self._fetch.finished:
            self._fetch.cancel()
            self._fetch.run()
        self._stop_ui(context)
        if self._fetch is not None:
            self._end(self._fetch)

    def _stop_ui(self, context):
        wm = context.window_manager
        if self._timer is not None:
            wm.event_timer_remove(self._timer)
            self._timer = None
        wm.progress_end()
        if context.workspace is not None:
            context.workspace.status_text_set(None)


classes = (INSTMATT_OT_refresh_models, INSTMATT_OT_download_models)
