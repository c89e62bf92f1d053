"""The add-on's bpy-free half: everything here runs in any Python 3.11, outside Blender.

- ``protocol``: the protocol's version, pseudo-events, errors and request ids (docs/protocol.md)
- ``launch``: finding the engine and the command line that starts it
- ``process``: one engine process, its reader threads and the queue of its events
- ``shared``: the one warm engine of a Blender session
- ``job``: the state machine of one ``matte`` request
- ``exrheader``, ``matte_files``, ``frames``: what the engine wrote (EXR headers, frame patterns)
- ``raster``: Mask splines to pixels and PNG bytes
- ``staging``: the extension folder Blender wants (the package plus the top-level manifest)

The bpy-facing modules one folder up import from here; nothing here imports them or bpy.
"""
