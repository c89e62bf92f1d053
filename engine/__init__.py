"""blender-instmatt engine: the InstMatt network, its pipeline and everything around it.

This package never imports bpy; the Blender add-on talks to it through
``python -m engine serve --stdio`` (see docs/protocol.md).
"""

__version__ = "0.1.0"
