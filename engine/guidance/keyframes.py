"""Keyframes: the frames where guidance is given, which keyframe drives every other frame,
and which frames a keyframe edit makes stale.

A keyframe folder uses the mask-folder layout (``KEYS/<frame, 4 digits>/<NN>.png``) but
holds folders for some frames only. The rule for every other frame:

- Before the first keyframe, people are carried backward from it; after the last,
  forward from it.
- Between two keyframes A < B, each frame follows the nearer one (a tie goes to A), and is
  carried from its neighbour on that side: forward from A, backward from B. Exception: when
  someone in A has no mask in B (they leave the shot at B), the whole gap follows A, so
  they stay until B as the rule below says.
- A person first seen in a later keyframe starts there: carried backward from B only if
  A shows them too (or there is no A). A person without a mask file in a keyframe leaves
  the shot from that keyframe on, until a keyframe shows them again.

Each frame's guidance comes from one keyframe along one chain of frames. A keyframe B after
another keyframe A is *completed* from A: a person mostly hidden at B (walking behind
someone) is known at B only by a sliver, so their whole shape is carried from A to B and
matched to B's sliver (:meth:`LayeredTracker.complete`); B's frames then depend on A too.
A frame's dependency record (for the manifest) names its keyframe, the keyframe's content
hash, the frame it was carried from, the people carried, and the earlier keyframes (with
their hashes) it was completed from. A rerun compares records and
recomputes a frame when its record changed or the frame it was carried from is
recomputed: exactly the frames whose guidance depends on an edited, added or removed
keyframe.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.errors import InputFileError


@dataclass(frozen=True)
class Keyframe:
    frame: int
    people: tuple[int, ...]  # the people with a (non-empty) mask here
    digest: str  # content hash of the masks (numbers and bytes)


@dataclass(frozen=True)
class Source:
    """Where one frame's guidance comes from."""

    frame: int
    keyframe: int
    previous: int | None  # the frame it is carried from; None on the keyframe itself
    people: tuple[int, ...]
    completed_from: tuple[int, ...] = ()  # earlier keyframes the keyframe's people are completed from

    def record(self, keys: dict[int, Keyframe]) -> dict:
        """The dependency record stored in the frame's manifest."""
        record = {"keyframe": self.keyframe, "hash": keys[self.keyframe].digest,
                  "carried_from": self.previous, "people": list(self.people)}
        if self.completed_from:
            record["completed_from"] = {f"{k:04d}": keys[k].digest for k in self.completed_from}
        return record


def digest_arrays(masks: dict[int, np.ndarray]) -> str:
    """Content hash of in-memory keyframe masks {person number: (H, W)}."""
    h = hashlib.sha256()
    for number in sorted(masks):
        plane = np.ascontiguousarray(masks[number], np.float32)
        h.update(f"{number}:{plane.shape}:".encode())
        h.update(plane.tobytes())
    return h.hexdigest()[:16]


def digest_files(files: dict[int, Path]) -> str:
    """Content hash of a keyframe's mask files {person number: path} (their bytes)."""
    h = hashlib.sha256()
    for number in sorted(files):
        h.update(f"{number}:".encode())
        h.update(Path(files[number]).read_bytes())
    return h.hexdigest()[:16]


def read_keyframes(path: str | os.PathLike) -> tuple[dict[int, Keyframe], dict[int, dict[int, np.ndarray]]]:
    """The keyframes of a KEYS folder and their masks {frame: {person: (H, W)}}."""
    from engine.guidance.masks import _person_files
    from engine.io.images import read_mask

    root = Path(path)
    if not root.is_dir():
        raise InputFileError(root, "keyframe folder not found (expected KEYS/<frame, 4 digits>/<NN>.png)")
    keys: dict[int, Keyframe] = {}
    masks: dict[int, dict[int, np.ndarray]] = {}
    for entry in sorted(root.iterdir()):
        if not (entry.is_dir() and entry.name.isdigit()):
            continue
        frame = int(entry.name)
        files = dict(_person_files(entry))
        planes = {n: read_mask(f) for n, f in files.items()}
        present = tuple(sorted(n for n, m in planes.items() if (m > 0).any()))
        keys[frame] = Keyframe(frame, present, digest_files(files))
        masks[frame] = {n: planes[n] for n in present}
    if not keys:
        raise InputFileError(root, "holds no keyframe folders (expected KEYS/<frame, 4 digits>/<NN>.png)")
    return keys, masks


def plan(frames: list[int], keys: dict[int, Keyframe]) -> dict[int, Source]:
    """Which keyframe drives each frame, and from which neighbour it is carried.

    ``frames``: the job's frames in order; neighbours are neighbours in this list. Only
    keyframes among ``frames`` count."""
    order = list(frames)
    at = {f: i for i, f in enumerate(order)}
    key_index = sorted(at[k] for k in keys if k in at)
    if not key_index:
        return {}
    out: dict[int, Source] = {}
    # a keyframe is completed from the one before when they share people (and so on back)
    completed: dict[int, tuple[int, ...]] = {}
    for n, i in enumerate(key_index):
        before = order[key_index[n - 1]] if n else None
        shares = before is not None and set(keys[order[i]].people) & set(keys[before].people)
        completed[order[i]] = (before, *completed[before]) if shares else ()

    def chain(start: int, stop: int, step: int, key: int, people: tuple[int, ...]) -> None:
        for i in range(start, stop, step):
            out[order[i]] = Source(order[i], key, order[i - step], people, completed[key])

    for n, i in enumerate(key_index):
        key = order[i]
        out[key] = Source(key, key, None, keys[key].people, completed[key])
        if n == 0:  # backward from the first keyframe
            chain(i - 1, -1, -1, key, keys[key].people)
        if n == len(key_index) - 1:  # forward from the last
            chain(i + 1, len(order), 1, key, keys[key].people)
            continue
        j = key_index[n + 1]
        a, b = keys[key], keys[order[j]]
        leaving = set(a.people) - set(b.people)
        split = j if leaving else i + (j - i) // 2 + 1  # first index that follows B
        chain(i + 1, split, 1, key, a.people)
        shared = tuple(p for p in b.people if p in a.people)  # people new in B start at B
        chain(j - 1, split - 1, -1, order[j], shared)
    return out


def propagation_order(sources: dict[int, Source]) -> list[int]:
    """An order in which every frame comes after the frame it is carried from."""
    done: list[int] = []
    seen: set[int] = set()
    for frame in sorted(sources):
        path = []
        f: int | None = frame
        while f is not None and f not in seen:
            path.append(f)
            f = sources[f].previous
        for g in reversed(path):
            seen.add(g)
            done.append(g)
    return done


@dataclass
class Recompute:
    frames: list[int]  # in propagation order
    message: str


def changed_keyframes(keys: dict[int, Keyframe], previous: dict[int, dict | None]) -> list[str]:
    """'keyframe 1013 changed', '... added', '... removed', from the old frames' records."""
    old: dict[int, str] = {}
    for record in previous.values():
        if record:
            old[int(record["keyframe"])] = record["hash"]
            old.update({int(k): digest for k, digest in record.get("completed_from", {}).items()})
    notes = []
    for frame in sorted(set(old) | set(keys)):
        if frame not in keys:
            notes.append(f"keyframe {frame:04d} removed")
        elif frame not in old:
            if previous and any(r for r in previous.values()):
                notes.append(f"keyframe {frame:04d} added")
        elif old[frame] != keys[frame].digest:
            notes.append(f"keyframe {frame:04d} changed")
    return notes


def plan_recompute(sources: dict[int, Source], keys: dict[int, Keyframe],
                   previous: dict[int, dict | None]) -> Recompute:
    """The frames to (re)compute given the records of the previous run (frame -> record,
    None where no output exists), and the message that says why."""
    stale: set[int] = set()
    missing = 0
    for frame in propagation_order(sources):
        source = sources[frame]
        old = previous.get(frame)
        if old is None:
            missing += 1
            stale.add(frame)
        elif old != source.record(keys) or (source.previous is not None and source.previous in stale):
            stale.add(frame)
    frames = [f for f in propagation_order(sources) if f in stale]
    redone = len(frames) - missing
    parts = []
    if missing:
        parts.append(f"{missing} frames to compute")
    if redone:
        why = ", ".join(changed_keyframes(keys, previous)) or "guidance changed"
        parts.append(f"{redone} frames recomputed: {why}")
    if not frames:
        parts.append("every frame is up to date")
    return Recompute(frames, "; ".join(parts))
