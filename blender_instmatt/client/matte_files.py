"""What a shot's matte files hold, read from their EXR headers only."""

from __future__ import annotations

from . import exrheader


def inspect_mattes(paths: dict[int, str]) -> tuple[int, list[str], str]:
    """``(widest frame, people, warning)`` of a shot's matte files, from their headers.

    Blender makes the Image node's sockets from the one file the image opens, so it
    should open the frame with the most people; and where a frame lacks a person's
    layer, Blender's Image node gives another layer's pixels instead of zero, which the
    warning points out (the engine should write every person's layer in every frame).
    """
    per_frame: dict[int, list[str]] = {}
    unreadable = []
    for frame, path in sorted(paths.items()):
        try:
            per_frame[frame] = exrheader.people(path)
        except (OSError, exrheader.ExrHeaderError):
            unreadable.append(frame)
    people: list[str] = []
    for names in per_frame.values():
        people.extend(n for n in names if n not in people)
    people.sort(key=lambda name: (len(name), name))
    widest = max(per_frame, key=lambda f: (len(per_frame[f]), -f)) if per_frame else min(paths)
    problems = []
    if unreadable:
        problems.append(f"{len(unreadable)} unreadable EXR file(s) (frame {unreadable[0]}...)")
    missing: dict[str, list[int]] = {}
    for frame, names in per_frame.items():
        for person in people:
            if person not in names:
                missing.setdefault(person, []).append(frame)
    if missing:
        listed = "; ".join(f"{person}: {len(frames)} frame{'s' * (len(frames) != 1)} from {frames[0]}"
                           for person, frames in missing.items())
        problems.append(f"some frames lack a person's layer ({listed}); Blender shows another person's "
                        "alpha there instead of zero")
    return widest, people, "; ".join(problems)


def shot_labels(paths: dict[int, str]) -> dict[str, str]:
    """The artist's names of the people (person ID -> label), from the files' manifests."""
    labels: dict[str, str] = {}
    for _, path in sorted(paths.items()):
        try:
            found = (exrheader.manifest(path) or {}).get("labels") or {}
        except (OSError, exrheader.ExrHeaderError):
            continue
        for pid, label in found.items():
            if isinstance(pid, str) and isinstance(label, str):
                labels.setdefault(pid, label)
    return labels
