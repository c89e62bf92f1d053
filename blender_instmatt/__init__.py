"""InstMatt People: one alpha matte per person in live footage, in Blender's compositor.

The add-on imports bpy and the standard library only; its bpy-free half is ``client/``.  The matting itself runs in a
separately installed engine process (``<engine python> -m engine serve --stdio``) that
this add-on starts and talks to over JSON lines (docs/protocol.md), so torch never
loads into Blender and an engine crash never takes Blender down.
"""

from __future__ import annotations

import atexit

import bpy

from . import client, compositor, masks, model_ops, operators, planning, prefs, properties, run, sources, ui  # noqa: F401
from .client.shared import stop_shared_engine

_MODULES = (prefs, properties, operators, model_ops, ui)
_atexit_registered = False


def _classes():
    for module in _MODULES:
        yield from getattr(module, "classes", ())


def register():
    global _atexit_registered
    for cls in _classes():
        bpy.utils.register_class(cls)
    for module in _MODULES:
        if hasattr(module, "register"):
            module.register()
    if not _atexit_registered:
        atexit.register(stop_shared_engine)
        _atexit_registered = True


def unregister():
    global _atexit_registered
    run.cancel_active()
    stop_shared_engine()
    if _atexit_registered:
        atexit.unregister(stop_shared_engine)
        _atexit_registered = False
    for module in reversed(_MODULES):
        if hasattr(module, "unregister"):
            module.unregister()
    for cls in reversed(list(_classes())):
        bpy.utils.unregister_class(cls)
