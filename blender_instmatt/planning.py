"""From the operator's properties (and the scene's InstMatt settings) to a :class:`Run`:
the source, the frame range, the output pattern, the engine's request and its guidance.

A property the caller set wins over the scene's panel settings, which win over the
defaults.  Mask guidance is planned here (which frames, which folder) and rasterised by
the run, frame by frame: every frame into a temporary folder the run removes, or, when
propagating, the keyframes into ``<output folder>/keyframes/``, which stays (unchanged
keyframes keep their files, so the engine recomputes only the frames an edit affects).
"""

from __future__ import annotations

import os
import tempfile

import bpy

from . import mask_keys, masks, prefs, sources
from .client import defaults, roto
from .client.frames import shot_folder
from .run import Run

OUTPUT_NAME = "instmatt.####.exr"
KEYFRAMES_FOLDER = "keyframes"  # beside the EXRs: the Mask's keyframes, for propagation


class PlanError(Exception):
    """The operator cannot start; the message is one line for the artist."""


def _given(op, name: str) -> bool:
    return op.properties.is_property_set(name)


def output_pattern(context, source, explicit: str) -> str:
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
    shot = shot_folder(source.name, numbered=source.available is not None)  # hold/, not hold_0001_jpg/
    return os.path.normpath(os.path.join(folder, shot, OUTPUT_NAME))


def scene_range(op, scene, settings, source) -> tuple[int, int] | None:
    """``(first, last)`` scene frames to matte; None for a still."""
    if source.single:
        return None
    if _given(op, "frame_start") or _given(op, "frame_end"):
        first = op.frame_start if _given(op, "frame_start") else scene.frame_start
        last = op.frame_end if _given(op, "frame_end") else scene.frame_end
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
    return first, last


def guidance_kind(op, settings) -> tuple[str, object]:
    """(DETECTOR, MASK or INDEX, the Mask when automatic found one): what the caller named,
    else the panel's choice; "Automatic" is a Mask with layers, else the detector."""
    if op.guidance != "AUTO":
        return op.guidance, None
    if op.mask:
        return "MASK", None
    if op.index_path:
        return "INDEX", None
    panel = settings.guidance if settings is not None else "AUTO"
    if panel != "AUTO":
        return panel, None
    kind, mask, _ = masks.auto_guidance(settings)
    return kind, mask


def guidance_request(op, context, settings, run: Run) -> dict:
    """The request's ``guidance``; rasterises a Mask into a folder of the run's, and its
    layer names become the people's labels."""
    kind, found = guidance_kind(op, settings)
    if kind == "MASK":
        mask = masks.find_mask(op.mask) if op.mask else found or (settings.mask if settings is not None else None)
        if mask is None:
            raise PlanError("Mask guidance needs a Mask datablock (one layer per person)")
        folder = mask_guidance(op, context, settings, run, mask)
        labels = masks.layer_labels(mask)
        if labels:
            run.request["options"]["labels"] = labels
        return {"kind": "masks", "path": folder}
    if kind == "INDEX":
        path = op.index_path or (settings.index_path if settings is not None else "")
        if not path:
            raise PlanError("ID-image guidance needs a frame pattern of ID images")
        return {"kind": "index", "path": bpy.path.abspath(path)}
    carry = op.carry_detections if _given(op, "carry_detections") else bool(getattr(settings, "carry_detections", False))
    if carry:
        every = op.detect_every if _given(op, "detect_every") else int(getattr(settings, "detect_every", defaults.DETECT_EVERY))
        run.request["options"].update(propagate=True, detect_every=every)
    return {"kind": "detector"}


def mask_guidance(op, context, settings, run: Run, mask) -> str:
    """Plan the Mask's rasterising (every frame, or the keyframes when propagating) as the
    run's first phase; returns the folder the engine reads."""
    source = run.source
    if run.scene_range is None:
        shot = [(context.scene.frame_current, None)]
    else:
        first, last = run.scene_range
        shot = [(f, source.source_frame(f)) for f in range(first, last + 1)]
    propagate = op.propagate if _given(op, "propagate") else bool(getattr(settings, "propagate", True))
    keys: set[int] = set()
    if propagate and len(shot) > 1:
        try:
            keys = mask_keys.keyframes(mask, masks.person_layers(mask))
        except mask_keys.NoShapeKeyAccess as exc:
            why = f"the Mask's shape keys are unreadable here ({exc})"
            run.reports.append(("WARNING", f"InstMatt: not propagating, {why}; its shapes guide every frame"))
            propagate = False
    mask_plan = roto.plan_frames(shot, keys, propagate)
    folder = os.path.join(os.path.dirname(run.output_pattern), KEYFRAMES_FOLDER)
    writer = masks.GuidanceWriter(context, mask, source.size, folder, keyframes=mask_plan.propagate,
                                  moves=run.scene_range is not None)  # checks the size and the layers first
    if mask_plan.propagate:
        os.makedirs(folder, exist_ok=True)
        roto.remove_stale_keyframes(folder, {frame for _, frame in mask_plan.frames})
        run.request["options"]["propagate"] = True
    else:
        writer.folder = folder = tempfile.mkdtemp(prefix="instmatt_masks_")
        run.temp_dirs.append(folder)
    run.raster = roto.Rasterising(mask_plan.frames, writer.write, writer.close,
                                  label="keyframe masks" if mask_plan.propagate else "masks")
    if mask_plan.propagate:
        run.guidance_text = f"propagated from Mask '{mask.name}' {mask_plan.describe()}"
    return folder


def plan(op, context) -> Run:
    """Turn the operator's properties (and the scene's InstMatt settings) into a Run."""
    scene = context.scene
    settings = getattr(scene, "instmatt", None)
    try:
        source = sources.resolve(context, op.source, op.image, op.clip)
    except sources.SourceError as exc:
        raise PlanError(str(exc)) from None
    frames = scene_range(op, scene, settings, source)
    output = output_pattern(context, source, op.output)
    os.makedirs(os.path.dirname(output), exist_ok=True)

    overwrite = op.overwrite if _given(op, "overwrite") else \
        bool(settings.overwrite) if settings is not None else False
    request = {
        "type": "matte",
        "input": source.input,
        "output": output,
        "options": prefs.engine_options(prefs.get_prefs(context), overwrite=overwrite),
    }
    if settings is not None:  # the panel's output options
        request["options"].update(compression=settings.compression, depth=settings.depth,
                                  union_pass=bool(settings.union_pass), background_pass=bool(settings.background_pass))
    if frames is not None:
        request["frames"] = [source.source_frame(frames[0]), source.source_frame(frames[1])]
    example = op.setup_compositor if _given(op, "setup_compositor") else \
        bool(settings.setup_example) if settings is not None else True
    run = Run(context, source, frames, output, request, example)
    try:
        request["guidance"] = guidance_request(op, context, settings, run)
    except (KeyError, ValueError) as exc:
        run.cleanup()
        raise PlanError(str(exc.args[0]) if exc.args else str(exc)) from None
    except BaseException:
        run.cleanup()
        raise
    return run
