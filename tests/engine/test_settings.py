"""engine.settings is the one source of defaults: the CLI, the protocol and the add-on follow it."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from engine import settings
from engine.commands import build_parser
from engine.commands.serve_messages import OPTION_TYPES
from engine.errors import UserError
from engine.settings import MatteSettings

REPO = Path(__file__).resolve().parents[2]


def _addon_defaults():
    """blender_instmatt/client/defaults.py, loaded on its own (it needs no bpy)."""
    path = REPO / "blender_instmatt" / "client" / "defaults.py"
    spec = importlib.util.spec_from_file_location("addon_defaults", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_addon_preference_defaults_follow_the_engine():
    addon = _addon_defaults()
    for name in ("BACKENDS", "BACKEND", "REFINE_MODES", "REFINE", "SCORE", "MIN_AREA", "MAX_SIDE", "MIN_MAX_SIDE",
                 "COMPRESSIONS", "COMPRESSION", "DEPTHS", "DEPTH", "UNION_PASS", "BACKGROUND_PASS",
                 "PROPAGATE", "DETECT_EVERY", "TEMPORAL"):
        assert getattr(addon, name) == getattr(settings, name), name


def test_cli_defaults_come_from_settings():
    args = build_parser().parse_args(["matte", "in.png", "-o", "out/"])
    assert (args.max_side, args.refine, args.score, args.min_area, args.detector_size, args.backend) == (
        settings.MAX_SIDE, settings.REFINE, settings.SCORE, settings.MIN_AREA, settings.DETECTOR_SIZE,
        settings.BACKEND)


def test_protocol_options_are_the_settings_fields():
    assert set(OPTION_TYPES) == set(MatteSettings.names())


@pytest.mark.parametrize("field, value, words", [
    ("score", 1.5, "score"), ("min_area", 1.0, "min_area"), ("max_side", 10, "max_side"),
    ("refine", "fast", "refine"), ("backend", "openvino", "backend"), ("threads", -3, "threads"),
    ("detector_size", 32, "detector_size"), ("compression", "b44", "compression"), ("depth", "double", "depth"),
    ("labels", {"boss": "Anna"}, "not a person ID"), ("labels", {"person_01": " "}, "1-63 characters"),
    ("labels", ["Anna"], "labels must map"),
])
def test_one_check_for_every_setting(field, value, words):
    with pytest.raises(UserError, match=words):
        MatteSettings(**{field: value}).check()


def test_settings_import_no_torch():
    code = "import sys, engine.settings; raise SystemExit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0


def test_exact_is_a_checked_setting_and_recorded_in_the_manifest():
    import argparse

    from engine.commands.matte import add_arguments, settings_from_args
    from engine.settings import EXACT, MatteSettings

    assert MatteSettings().exact is EXACT is False  # person crops unless asked
    assert MatteSettings(exact=True).manifest()["exact"] is True
    with pytest.raises(UserError, match="exact must be true or false"):
        MatteSettings(exact="yes").check()
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert settings_from_args(parser.parse_args(["in.png", "-o", "out", "--exact"])).exact is True
    assert settings_from_args(parser.parse_args(["in.png", "-o", "out"])).exact is False
