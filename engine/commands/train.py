"""``instmatt train CONFIG``: train the matting net (stage 1) and the refiner (stage 2)."""

from __future__ import annotations

import argparse
import json
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="YAML training config (see configs/ and docs/training.md)")
    parser.add_argument("--stage", choices=("1", "2", "all"), default="all",
                        help="train stage 1 (matting net), stage 2 (refiner, backbone frozen) or both (default)")
    parser.add_argument("--resume", metavar="CHECKPOINT",
                        help="continue from a stage checkpoint (.pth written by training), or 'auto' for the "
                             "latest one in the run's output folder")
    parser.add_argument("--init", metavar="WEIGHTS", help="start from these weights (overrides the config's init)")
    parser.add_argument("--out", help="output folder (overrides the config's out)")
    parser.add_argument("--device", help="auto, cpu, cuda or cuda:N (overrides the config)")
    parser.add_argument("--seed", type=int, help="random seed (overrides the config)")
    parser.add_argument("--export", metavar="PATH", help="also write the final weights here (.safetensors or .pth)")


def run(args: argparse.Namespace) -> int:
    from engine.training.config import load_config
    from engine.training.trainer import Trainer, configure_process, resolve_resume

    config = load_config(args.config)
    for name in ("init", "out", "device", "seed", "export"):
        value = getattr(args, name, None)
        if value is not None:
            setattr(config, name, value)
    stages = (1, 2) if args.stage == "all" else (int(args.stage),)
    if stages == (2,) and not (config.init or args.resume):
        print("instmatt train: note: stage 2 alone starts from random matting weights; pass --init or "
              "--resume with a stage-1 checkpoint", file=sys.stderr)
    resume = resolve_resume(config, args.resume)
    configure_process(config)
    trainer = Trainer(config)
    print(f"instmatt train: width {trainer.model.width:g}, device {trainer.device}"
          f"{' (mixed precision)' if trainer.amp else ''}, output {config.out}"
          f"{f', resuming from {resume}' if resume else ''}", file=sys.stderr)
    results = trainer.train(stages, resume)
    print(json.dumps(results, indent=2))
    return 0
