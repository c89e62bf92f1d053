"""The ``instmatt`` command: one sub-command per module, imported only when used.

Each command module exposes ``add_arguments(parser)`` and ``run(args) -> int``.
Keeping the imports lazy means ``instmatt --help`` and ``instmatt eval`` start fast
and never load torch when they do not need it.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from engine.errors import run_command

# sub-command -> (module, one-line help)
COMMANDS = {
    "demo": ("engine.demo", "run the whole pipeline offline on a generated clip"),
    "matte": ("engine.batch", "matte an image, folder, frame pattern or video into EXR layers"),
    "serve": ("engine.serve", "serve the Blender add-on over JSON lines (stdin/stdout)"),
    "eval": ("engine.evaluate", "IMQ evaluation of predicted alphas against HIM2K ground truth"),
    "synth": ("engine.data.synth_cli", "write a HIM2K-layout data set of composites"),
    "train": ("engine.training.cli", "train the matting net (stage 1) or the refiner (stage 2)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="instmatt", description="Per-person alpha mattes (InstMatt) for live footage.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        command.set_defaults(_module=module_name)
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name is None or not module_name.startswith(exc.name):
                raise
            command.set_defaults(_missing=f"'{name}' is not available in this build")
            continue
        module.add_arguments(command)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    if getattr(args, "_missing", None):
        print(f"instmatt: {args._missing}", file=sys.stderr)
        return 2
    module = importlib.import_module(args._module)
    return run_command(f"instmatt {args.command}", module.run, args)
