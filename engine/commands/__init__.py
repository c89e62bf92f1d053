"""The ``instmatt`` command: one sub-command per module, imported only when used.

Each command module exposes ``add_arguments(parser)`` and ``run(args) -> int``.
Keeping the imports lazy means ``instmatt --help`` and ``instmatt eval`` start fast
and never load torch when they do not need it.
"""

from __future__ import annotations

import argparse
import importlib

from engine.errors import run_command

# sub-command -> (module, one-line help)
COMMANDS = {
    "demo": ("engine.commands.demo", "run the whole pipeline offline on a generated clip"),
    "matte": ("engine.commands.matte", "matte an image, folder, frame pattern or video into EXR layers"),
    "serve": ("engine.commands.serve", "serve the Blender add-on over JSON lines (stdin/stdout)"),
    "eval": ("engine.commands.eval", "IMQ evaluation of predicted alphas against HIM2K ground truth"),
    "synth": ("engine.commands.synth", "write a HIM2K-layout data set of composites"),
    "train": ("engine.commands.train", "train the matting net (stage 1) or the refiner (stage 2)"),
    "models": ("engine.commands.models", "list, fetch, verify and mirror the model weights (the registry)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="instmatt", description="Per-person alpha mattes (InstMatt) for live footage.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        command.set_defaults(_module=module_name)
        importlib.import_module(module_name).add_arguments(command)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    module = importlib.import_module(args._module)
    return run_command(f"instmatt {args.command}", module.run, args)
