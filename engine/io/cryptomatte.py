"""Per-person soft alphas as a Cryptomatte layer (Psyop Cryptomatte specification, v1.2).

Layout, for the layer name ``CryptoPerson``:

- rank layers ``CryptoPerson00``, ``CryptoPerson01``, ...; each holds two ranks as RGBA:
  R = id of rank 2n, G = its coverage, B = id of rank 2n+1, A = its coverage. Per pixel the
  people are ranked by coverage, highest first; an empty rank has id 0 and coverage 0.
- an id is MurmurHash3_x86_32 of the person's name (UTF-8, seed 0) whose bits are read as a
  float32, with bit 23 flipped when the exponent bits are 0 or 255 (no denormals, inf, NaN).
- header attributes ``cryptomatte/<key>/name|hash|conversion|manifest`` where ``<key>`` is
  the first 7 hex digits of the layer name's hash and the manifest maps name -> 8-hex id.

The channels must be 32-bit float: a half float keeps 10 of the 23 mantissa bits, so ids
would no longer match their manifest entries.
"""

from __future__ import annotations

import json

import numpy as np

LAYER = "CryptoPerson"
HASH_NAME = "MurmurHash3_32"
CONVERSION = "uint32_to_float32"
RANKS_PER_LAYER = 2
_EXPONENT_MASK = 0xFF << 23


def murmur3_32(name: str) -> int:
    """MurmurHash3_x86_32 of the UTF-8 bytes of ``name``, seed 0, as an unsigned int."""
    import mmh3

    return mmh3.hash(name.encode("utf-8"), 0, signed=False)


def id_bits(name: str) -> int:
    """The 32 bits stored for ``name``: its hash, kept off the float exponents 0 and 255."""
    bits = murmur3_32(name)
    exponent = bits & _EXPONENT_MASK
    if exponent in (0, _EXPONENT_MASK):
        bits ^= 1 << 23
    return bits


def id_float(name: str) -> np.float32:
    """The float32 id of ``name`` as it appears in the rank layers' R and B channels."""
    return np.array([id_bits(name)], np.uint32).view(np.float32)[0]


def layer_key(layer: str = LAYER) -> str:
    """The metadata key of a layer: the first 7 hex digits of the layer name's hash."""
    return f"{murmur3_32(layer):08x}"[:7]


def manifest(names: list[str]) -> dict[str, str]:
    """name -> the 8 hex digits of its float id bits."""
    return {name: f"{id_bits(name):08x}" for name in names}


def header_attributes(names: list[str], layer: str = LAYER) -> dict[str, str]:
    """The four string attributes a reader needs to find and name the layer's ids."""
    prefix = f"cryptomatte/{layer_key(layer)}/"
    return {
        prefix + "name": layer,
        prefix + "hash": HASH_NAME,
        prefix + "conversion": CONVERSION,
        # raw UTF-8, not \\u escapes: Blender's manifest reader drops backslashes
        prefix + "manifest": json.dumps(manifest(names), ensure_ascii=False, separators=(",", ":")),
    }


def coverages(alphas: np.ndarray) -> np.ndarray:
    """Per-person coverage from soft alphas (K, H, W): the alphas themselves, scaled down
    only where they add up to more than 1, so a pixel's coverages never exceed 1 in total."""
    alphas = np.clip(np.nan_to_num(np.asarray(alphas, np.float32), nan=0.0), 0.0, 1.0)
    total = alphas.sum(axis=0)
    return alphas / np.maximum(total, 1.0)[None]


def rank_layer_count(people: int) -> int:
    """Rank layers needed so that every person can appear at every pixel (at least one)."""
    return max(1, -(-people // RANKS_PER_LAYER))


def encode(alphas: np.ndarray, names: list[str], layer: str = LAYER, letters: str = "RGBA") -> dict[str, np.ndarray]:
    """Rank-layer channels ``<layer>NN.R/G/B/A`` (float32 (H, W) planes) for K alphas (K, H, W).

    ``letters="rgba"`` names them in lower case, which DWA compression keeps lossless
    (it quantises channels named R, G, B); Blender reads either.
    """
    alphas = np.asarray(alphas, np.float32)
    if alphas.ndim != 3 or alphas.shape[0] != len(names):
        raise ValueError(f"alphas {alphas.shape} do not match {len(names)} names")
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate Cryptomatte names: {names}")
    people, height, width = alphas.shape
    cover = coverages(alphas)
    ids = np.array([id_float(name) for name in names], np.float32)
    # highest coverage first; ties keep the people's order. Only pixels someone covers are
    # ranked (most of a frame is nobody's), which makes this several times cheaper.
    flat = cover.reshape(people, height * width)
    covered = np.flatnonzero((flat > 0).any(axis=0)) if people else np.zeros(0, np.intp)
    order = np.argsort(-flat[:, covered], axis=0, kind="stable")
    ranked_cover = np.zeros_like(flat)
    ranked_ids = np.zeros_like(flat)
    ranked_cover[:, covered] = np.take_along_axis(flat[:, covered], order, axis=0)
    ranked_ids[:, covered] = np.where(ranked_cover[:, covered] > 0, ids[order], np.float32(0.0))
    ranked_cover = ranked_cover.reshape(people, height, width)
    ranked_ids = ranked_ids.reshape(people, height, width)
    slots = rank_layer_count(people) * RANKS_PER_LAYER
    zeros = np.zeros((height, width), np.float32)
    channels: dict[str, np.ndarray] = {}
    for rank in range(slots):
        number, second = divmod(rank, RANKS_PER_LAYER)
        id_channel, cover_channel = letters[2 * second], letters[2 * second + 1]
        base = f"{layer}{number:02d}"
        if rank < people:
            channels[f"{base}.{id_channel}"] = np.ascontiguousarray(ranked_ids[rank], np.float32)
            channels[f"{base}.{cover_channel}"] = np.ascontiguousarray(np.where(ranked_cover[rank] > 0,
                                                                                ranked_cover[rank], 0.0), np.float32)
        else:
            channels[f"{base}.{id_channel}"] = zeros
            channels[f"{base}.{cover_channel}"] = zeros
    return channels


def unique_names(ids: list[str], labels: dict[str, str] | None) -> list[str]:
    """The Cryptomatte name of each person: the artist's label, else the person ID.

    Two people with one label would share an id (their mattes merge in every decoder), so
    a repeated label gets the person ID added: ``Anna (person_03)``.
    """
    labels = labels or {}
    wanted = [str(labels.get(pid) or pid).strip() or pid for pid in ids]
    names = []
    for pid, name in zip(ids, wanted):
        if wanted.count(name) > 1 or name in names:
            name = f"{name} ({pid})"
        names.append(name)
    return names
