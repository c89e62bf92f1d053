"""Matte a whole shot with headless Blender.

    blender -b shot.blend --python-exit-code 1 --python blender_instmatt/batch.py -- \\
        --image plate --mask People --frames 1001-1100 --save

Options after ``--`` (all optional; the defaults are the scene's InstMatt settings):

    --image NAME | --clip NAME | --render   the source (default: the panel's choice)
    --mask NAME | --index PATTERN | --detector   the guidance
    --frames FIRST-LAST      scene frames (default: the scene's range)
    --output PATTERN         EXR frame pattern or folder (default: //instmatt/<source>/)
    --overwrite              recompute frames that exist (default: resume)
    --propagate | --no-propagate   Mask guidance: propagate from the Mask's keyframes, or
                             rasterise every frame (default: the panel's, on)
    --detect-every N         detector guidance: detect every N frames (0: the first only) and
                             carry the people between (default: the panel's; off: every frame)
    --no-compositor          do not touch the compositor
    --engine-python PATH     the engine's interpreter (default: the add-on's preferences)
    --engine-command CMD     a full engine command instead
    --backend NAME --weights FILE --max-side N --refine MODE   engine settings for this run
    --save                   save the .blend afterwards (mattes wired into its compositor)

The exit status is 0 when every frame was matted, 1 otherwise (with
``--python-exit-code 1``).  The add-on must be installed and enabled; when it is not
(e.g. run from a checkout), this script enables it from the folder it lives in.
"""

from __future__ import annotations

import argparse
import atexit
import importlib.util
import os
import shutil
import sys
import tempfile

import bpy


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="blender -b FILE --python batch.py --",
                                     description="Matte every person of a shot into EXR layers.")
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--image", default="", help="name of the image / image sequence / movie datablock")
    src.add_argument("--clip", default="", help="name of the movie clip")
    src.add_argument("--render", action="store_true", help="the render result")
    guide = parser.add_mutually_exclusive_group()
    guide.add_argument("--mask", default="", help="Mask datablock, one layer per person")
    guide.add_argument("--index", default="", help="frame pattern of integer-ID images")
    guide.add_argument("--detector", action="store_true", help="find people automatically")
    parser.add_argument("--frames", default="", help="FIRST-LAST scene frames")
    parser.add_argument("--output", default="", help="EXR frame pattern or folder")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--propagate", action=argparse.BooleanOptionalAction, default=None,
                        help="Mask guidance: propagate from the Mask's keyframes (default: the panel's setting)")
    parser.add_argument("--detect-every", type=int, default=None, metavar="N",
                        help="detector guidance: detect every N frames and carry the people between")
    parser.add_argument("--no-compositor", action="store_true")
    parser.add_argument("--engine-python", default="")
    parser.add_argument("--engine-command", default="")
    parser.add_argument("--backend", default="")
    parser.add_argument("--weights", default="")
    parser.add_argument("--max-side", type=int, default=0)
    parser.add_argument("--refine", default="")
    parser.add_argument("--save", action="store_true", help="save the .blend afterwards")
    return parser.parse_args(argv)


def script_args(argv: list[str] | None = None) -> list[str]:
    argv = sys.argv if argv is None else argv
    return argv[argv.index("--") + 1:] if "--" in argv else []


def addon_module() -> str:
    """The enabled add-on's module name, enabling it from this folder if necessary."""
    import addon_utils

    package = __package__ or ""
    if package and package in bpy.context.preferences.addons:
        return package
    for name in bpy.context.preferences.addons.keys():
        if name.rsplit(".", 1)[-1] == "blender_instmatt":
            return name
    # Not enabled: register this package as an extension of a temporary local repository
    # (a folder holding the package staged with its manifest, which a checkout keeps one
    # folder up; client/staging.py, loaded by path as this script is no package member).
    here = os.path.dirname(os.path.realpath(__file__))
    spec = importlib.util.spec_from_file_location("instmatt_staging", os.path.join(here, "client", "staging.py"))
    staging = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(staging)
    folder = tempfile.mkdtemp(prefix="instmatt_ext_")
    atexit.register(shutil.rmtree, folder, True)
    staging.stage_extension(folder, here)
    repos = bpy.context.preferences.extensions.repos
    repo = repos.new(name="InstMatt (local)", module="instmatt_local", custom_directory=folder, source="USER")
    name = f"bl_ext.{repo.module}.blender_instmatt"
    if addon_utils.enable(name, default_set=True) is None:
        raise SystemExit(f"instmatt batch: cannot enable the add-on from {here}")
    return name


def main(argv: list[str] | None = None) -> int:
    args = parse(script_args(argv))
    module = addon_module()
    prefs = bpy.context.preferences.addons[module].preferences
    if args.engine_command:
        prefs.engine_mode, prefs.engine_command = "COMMAND", args.engine_command
    elif args.engine_python:
        prefs.engine_mode, prefs.engine_python = "PYTHON", args.engine_python
    for key in ("backend", "weights", "refine"):
        if getattr(args, key):
            setattr(prefs, key, getattr(args, key))
    if args.max_side:
        prefs.max_side = args.max_side

    kwargs = {"setup_compositor": not args.no_compositor}
    if args.image:
        kwargs.update(source="IMAGE", image=args.image)
    elif args.clip:
        kwargs.update(source="CLIP", clip=args.clip)
    elif args.render:
        kwargs["source"] = "RENDER"
    if args.mask:
        kwargs.update(guidance="MASK", mask=args.mask)
    elif args.index:
        kwargs.update(guidance="INDEX", index_path=args.index)
    elif args.detector:
        kwargs["guidance"] = "DETECTOR"
    if args.frames:
        first, _, last = args.frames.partition("-")
        kwargs.update(frame_start=int(first), frame_end=int(last or first))
    if args.output:
        kwargs["output"] = args.output
    if args.overwrite:
        kwargs["overwrite"] = True
    if args.propagate is not None:
        kwargs["propagate"] = args.propagate
    if args.detect_every is not None:
        kwargs.update(carry_detections=True, detect_every=args.detect_every)

    try:
        result = bpy.ops.instmatt.matte_people("EXEC_DEFAULT", **kwargs)
    except RuntimeError as exc:  # the operator's ERROR reports arrive as RuntimeError
        print(f"instmatt batch: {str(exc).strip()}", file=sys.stderr, flush=True)
        return 1
    if "FINISHED" not in result:
        print("instmatt batch: cancelled", file=sys.stderr, flush=True)
        return 1
    settings = bpy.context.scene.instmatt
    print(f"instmatt batch: mattes in {settings.last_output}; people: {settings.last_people or 'none'}",
          flush=True)
    if args.save:
        if bpy.data.filepath:
            bpy.ops.wm.save_mainfile()
        else:
            print("instmatt batch: --save ignored, the file was never saved", file=sys.stderr)
    return 0


if __name__ == "__main__":
    code = main()
    if code:
        sys.exit(code)
