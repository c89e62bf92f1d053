"""Finding the engine and the command line that starts it (``python -m engine serve --stdio``)."""

from __future__ import annotations

import os
import shlex

from .protocol import EngineStartError


def default_python(root: str) -> str:
    """The interpreter that the README's set-up creates: ``<root>/.venv``."""
    if os.name == "nt":
        return os.path.join(root, ".venv", "Scripts", "python.exe")
    return os.path.join(root, ".venv", "bin", "python")


def find_engine_root(*candidates: str) -> str | None:
    """The first folder among ``candidates`` (or their parents) that holds ``engine/``.

    A Python inside ``<root>/.venv/bin`` points at ``<root>``; so does the add-on when it
    lives in the repository (``<root>/blender_instmatt``).
    """
    for start in candidates:
        if not start:
            continue
        path = os.path.realpath(os.path.expanduser(start))
        if os.path.isfile(path):
            path = os.path.dirname(path)
        for _ in range(5):
            if os.path.isfile(os.path.join(path, "engine", "__init__.py")):
                return path
            parent = os.path.dirname(path)
            if parent == path:
                break
            path = parent
    return None


OFFLINE_ENV = "INSTMATT_OFFLINE"


def build_command(
    python: str = "",
    command: str = "",
    engine_root: str = "",
    addon_dir: str = "",
    offline: bool = False,
) -> tuple[list[str], str | None, dict[str, str]]:
    """``(argv, cwd, env)`` that start the engine.

    ``command`` (a full command line, e.g. ``ssh gpu /opt/instmatt/.venv/bin/python -m
    engine serve --stdio``) wins when given.  Otherwise ``python -m engine serve --stdio``
    with ``python`` defaulting to ``<repo>/.venv/bin/python`` when the add-on lives in the
    repository.  The folder that holds ``engine/`` becomes the working directory and is
    put first on ``PYTHONPATH``, so the engine imports whether or not it is pip-installed.
    ``offline`` (Blender's Allow Online Access is off) forbids the engine all network use.
    """
    repo = find_engine_root(addon_dir) if addon_dir else None
    if command.strip():
        argv = shlex.split(command, posix=(os.name != "nt"))
    else:
        if not python.strip():
            if repo is None:
                raise EngineStartError(
                    "No engine Python set: name the engine's interpreter "
                    "(<engine checkout>/.venv/bin/python) in the add-on's preferences"
                )
            python = default_python(repo)
        python = os.path.expanduser(python.strip())
        argv = [python, "-m", "engine", "serve", "--stdio"] + (["--offline"] if offline else [])
    root = engine_root.strip() if engine_root else ""
    if root:
        root = os.path.realpath(os.path.expanduser(root))
    else:
        program = argv[0] if argv and os.path.dirname(argv[0]) else ""  # a path, not a bare "ssh"
        root = (find_engine_root(program) if program else None) or repo or ""
    env = dict(os.environ)
    for key in ("PYTHONHOME", "PYTHONSTARTUP", "PYTHONEXECUTABLE"):
        env.pop(key, None)  # Blender's own Python settings must not leak into the engine's
    env["PYTHONUNBUFFERED"] = "1"
    if offline:
        env[OFFLINE_ENV] = "1"  # also for a full command line, which we do not edit
    env.setdefault("PYTHONIOENCODING", "utf-8")
    if root:
        paths = [root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        env["PYTHONPATH"] = os.pathsep.join(paths)
    return argv, (root or None), env
