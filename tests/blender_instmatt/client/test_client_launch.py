"""client/launch.py: the command line that starts the engine, and where it looks."""

from __future__ import annotations

import os

import pytest
from blender_helpers import PACKAGE_DIR, REPO, load_client


@pytest.fixture(scope="module")
def launch(bpy):  # needs the bpy environment only because this folder runs there
    return load_client("launch")


def test_build_command(launch, tmp_path):
    argv, cwd, env = launch.build_command(addon_dir=PACKAGE_DIR)
    assert argv == [os.path.join(REPO, ".venv", "bin", "python"), "-m", "engine", "serve", "--stdio"]
    assert cwd == REPO and env["PYTHONPATH"].split(os.pathsep)[0] == REPO
    assert env["PYTHONUNBUFFERED"] == "1" and "PYTHONHOME" not in env
    argv, cwd, env = launch.build_command(command="ssh gpu '/opt/x y/python' -m engine serve --stdio",
                                      addon_dir=str(tmp_path))
    assert argv == ["ssh", "gpu", "/opt/x y/python", "-m", "engine", "serve", "--stdio"] and cwd is None
    # a python inside <root>/.venv points at <root>
    root = tmp_path / "checkout"
    (root / "engine").mkdir(parents=True)
    (root / "engine" / "__init__.py").write_text("")
    argv, cwd, _ = launch.build_command(python=str(root / ".venv" / "bin" / "python"), addon_dir=str(tmp_path))
    assert cwd == str(root)
    with pytest.raises(launch.EngineStartError, match="No engine Python set"):
        launch.build_command(addon_dir=str(tmp_path))
