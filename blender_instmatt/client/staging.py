"""The extension folder Blender wants: the package with ``blender_manifest.toml`` beside
``__init__.py``.

The repository keeps one manifest, at its root; an installed extension has it beside
``__init__.py``.  :func:`stage_extension` puts the package and the manifest together in
a folder of its own, for building the zip (copies) and for registering the add-on from a
checkout (links, so the add-on's files, and the engine found from them, stay the
checkout's).  Standalone on purpose (standard library, no relative imports): the build
script and ``batch.py`` load it by path, outside Blender's package system.
"""

from __future__ import annotations

import os
import shutil

MANIFEST = "blender_manifest.toml"
PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))  # blender_instmatt/
SKIPPED = ("__pycache__", MANIFEST)


def manifest_path(package_dir: str = PACKAGE_DIR) -> str:
    """The manifest beside ``__init__.py`` (installed), else the repository root's (checkout)."""
    for path in (os.path.join(package_dir, MANIFEST), os.path.join(os.path.dirname(package_dir), MANIFEST)):
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(f"{MANIFEST} is neither in {package_dir} nor in its parent folder")


def stage_extension(dest: str, package_dir: str = PACKAGE_DIR, copy: bool = False) -> str:
    """Make ``dest/<package>/`` hold the package's files and the manifest; returns that folder.

    ``copy=False`` links every entry (a copy where the system refuses links); ``copy=True``
    copies, as the builder needs (it does not walk into linked folders).
    """
    package_dir = os.path.realpath(package_dir)
    target = os.path.join(dest, os.path.basename(package_dir))
    os.makedirs(target)
    entries = [(os.path.join(package_dir, name), os.path.join(target, name))
               for name in sorted(os.listdir(package_dir)) if name not in SKIPPED]
    entries.append((manifest_path(package_dir), os.path.join(target, MANIFEST)))
    for source, link in entries:
        if not copy:
            try:
                os.symlink(source, link, target_is_directory=os.path.isdir(source))
                continue
            except OSError:
                pass  # e.g. Windows without the right to make links
        if os.path.isdir(source):
            shutil.copytree(source, link, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, link)
    return target
