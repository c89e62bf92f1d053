"""``instmatt models``: list, fetch, verify and mirror the weights the engine uses.

    instmatt models                          # one row per model: what, size, status, path
    instmatt models fetch [NAME ...]         # download what is missing, verified, resumable
    instmatt models fetch --mirror /studio/models     # or http://host/models/
    instmatt models verify [NAME ...]        # re-check what is cached
    instmatt models mirror DIR               # write a studio mirror from this cache
"""

from __future__ import annotations

import argparse
import json
import sys

from engine.registry import catalog
from engine.registry.store import ModelStore

from .progress import DownloadBars


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the table as JSON")
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    fetch = actions.add_parser("fetch", help="download the missing models (all by default), verify and cache them")
    fetch.add_argument("names", nargs="*", metavar="NAME", help=f"models to fetch: {', '.join(catalog.names())}")
    fetch.add_argument("--mirror", metavar="URL_OR_FOLDER",
                       help="a studio mirror (folder or http(s) URL with models.json); default $INSTMATT_MODELS_MIRROR")
    fetch.add_argument("--offline", action="store_true", default=None,
                       help="no network use at all (also INSTMATT_OFFLINE=1); a mirror folder still works")
    verify = actions.add_parser("verify", help="re-hash and strictly load the cached models")
    verify.add_argument("names", nargs="*", metavar="NAME")
    mirror = actions.add_parser("mirror", help="write a mirror folder (files + models.json) from this cache")
    mirror.add_argument("folder", metavar="DIR")


def _size(state) -> str:
    if state.size is not None:
        return f"{state.size / 1e6:.1f} MB"
    approx = catalog.MODELS[state.name].approx_size
    return f"~{approx / 1e6:.0f} MB" if approx else "?"


def print_table(store: ModelStore, out=sys.stdout) -> None:
    rows = [("NAME", "WHAT", "SIZE", "STATUS", "PATH")]
    states = store.states()
    for state in states:
        rows.append((state.name, catalog.MODELS[state.name].what, _size(state), state.status,
                     "-" if state.path is None else str(state.path)))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[4], file=out)
    for state in states:
        if state.sha256:
            print(f"sha256 {state.name}: {state.sha256}", file=out)
    print(f"cache: {store.root}", file=out)


def _report(message: str) -> None:
    print(message, file=sys.stderr)


def run(args) -> int:
    store = ModelStore()
    action = getattr(args, "action", None)
    if action is None:
        if args.json:
            json.dump({"cache": str(store.root), "models": [s.as_dict() for s in store.states()]}, sys.stdout, indent=2)
            print()
        else:
            print_table(store)
        return 0
    if action == "fetch":
        bars = DownloadBars()
        try:
            states = store.fetch(args.names or None, mirror=args.mirror, offline=args.offline,
                                 progress=bars, report=_report)
        finally:
            downloaded = bool(bars.bars)
            bars.close()
        if not downloaded and all(state.status == "verified" for state in states):
            print("nothing to download: " + ", ".join(s.name for s in states) + " cached and verified", file=sys.stderr)
        return 0
    if action == "verify":
        names = args.names or [s.name for s in store.states() if s.status != "missing"]
        if not names:
            print(f"nothing cached in {store.root} to verify", file=sys.stderr)
            return 0
        for name in names:
            state = store.verify(name)
            print(f"{name}: verified, sha256 {state.sha256}, {state.path}")
        return 0
    if action == "mirror":
        from engine.registry.mirror import write_mirror

        index = write_mirror(store.states(), args.folder, report=_report)
        print(f"mirror written: {index}")
        return 0
    raise AssertionError(action)
