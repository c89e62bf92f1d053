"""The CryptoPerson layer of engine EXRs, checked with a decoder written here from the
Cryptomatte specification (v1.2), not with the encoder's code."""

from __future__ import annotations

import os
import sys

import numpy as np
import OpenEXR
import pytest

from engine.io import ExrOptions, read_person_exr, write_person_exr
from engine.io.cryptomatte import id_bits, id_float, layer_key, murmur3_32, unique_names

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cryptomatte_decoder import LAYER, crypto_layers, decode  # noqa: E402


def _mm3_reference(data: bytes, seed: int = 0) -> int:
    """MurmurHash3_x86_32, written out from the algorithm (a second opinion on mmh3)."""
    c1, c2, mask = 0xCC9E2D51, 0x1B873593, 0xFFFFFFFF
    h = seed
    rotl = lambda x, r: ((x << r) | (x >> (32 - r))) & mask  # noqa: E731
    blocks = len(data) // 4
    for i in range(blocks):
        k = int.from_bytes(data[4 * i:4 * i + 4], "little")
        k = rotl((k * c1) & mask, 15) * c2 & mask
        h = (rotl(h ^ k, 13) * 5 + 0xE6546B64) & mask
    tail = data[4 * blocks:]
    if tail:
        k = int.from_bytes(tail, "little")
        h ^= rotl((k * c1) & mask, 15) * c2 & mask
    h ^= len(data)
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & mask
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & mask
    return h ^ (h >> 16)


def _soft_people(height=48, width=64, count=3, seed=0):
    """Blobby soft alphas with hair-like ramps; neighbours overlap a little."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    alphas = []
    for k in range(count):
        cx, cy = (k + 0.5) * width / count + rng.uniform(-3, 3), height / 2 + rng.uniform(-5, 5)
        r = np.hypot((xx - cx) / (width / count * 0.5), (yy - cy) / (height * 0.4))
        alphas.append(np.clip((1.15 - r) * 3.0, 0, 1) * rng.uniform(0.85, 1.0, (height, width)))
    return np.stack(alphas).astype(np.float32)


# --- hashes and ids -----------------------------------------------------------------------

def test_hash_matches_known_murmur3_values():
    # the specification's manifest examples and MurmurHash3_x86_32 test strings (seed 0)
    known = {"bunny": 0x13851A76, "default": 0x42C9679F, "bunny_porcelain_mat": 0xB24B26D4,
             "hello": 0x248BFA47, "The quick brown fox jumps over the lazy dog": 0x2E4FF723, "": 0}
    for name, value in known.items():
        assert murmur3_32(name) == value, name
    for name in ["person_01", "Anna", "Stunt double", "Zoë", "人物", "x" * 37]:
        assert murmur3_32(name) == _mm3_reference(name.encode("utf-8")), name


def test_ids_never_denormal_inf_or_nan():
    # exponent 0 (a denormal) and 255 (inf/NaN) get bit 23 flipped
    assert murmur3_32("person_11") == 0x00732E2A and id_bits("person_11") == 0x00F32E2A
    assert murmur3_32("person_1284") == 0xFF9351DA and id_bits("person_1284") == 0xFF1351DA
    assert id_bits("bunny") == 0x13851A76  # other hashes unchanged
    for number in range(1, 3000):
        value = id_float(f"person_{number:02d}")
        assert np.isfinite(value) and (value == 0 or abs(value) >= np.finfo(np.float32).tiny)


def test_layer_key_is_first_seven_hex_of_the_layer_name_hash():
    assert layer_key("CryptoPerson") == f"{_mm3_reference(b'CryptoPerson'):08x}"[:7] == "5855bc6"


# --- the layer in a written file --------------------------------------------------------

def test_decoded_coverage_equals_each_persons_alpha(tmp_path):
    alphas = _soft_people(count=3)
    ids = ["person_01", "person_02", "person_03"]
    path = write_person_exr(tmp_path / "f.0001.exr", alphas, ids, {"people": ids})
    header = OpenEXR.File(str(path), header_only=True).header()
    info = crypto_layers(header)[LAYER]
    assert info["key"] == "5855bc6" and set(info["manifest"]) == set(ids)
    _, back, _ = read_person_exr(path)
    overlap = alphas.sum(axis=0) > 1
    assert overlap.any() and not overlap.all()
    for k, pid in enumerate(ids):
        matte = decode(path, pid)
        assert np.abs(matte - back[k]).mean() <= 0.01, pid  # against the file's own person pass
        assert np.abs(matte - alphas[k]).mean() <= 0.01, pid
        # exact (float32) where people do not overlap
        assert np.abs(matte - alphas[k])[~overlap].max() < 1e-6, pid


def test_overlap_is_normalised_and_ranked_by_coverage(tmp_path):
    alphas = np.zeros((3, 4, 5), np.float32)
    alphas[0, 0, 0], alphas[1, 0, 0] = 0.8, 0.8          # sum 1.6 -> 0.5 each
    alphas[0, 1, 1], alphas[1, 1, 1], alphas[2, 1, 1] = 0.2, 0.7, 0.1  # sum 1.0 kept
    alphas[2, 2, 2] = 0.4                                  # alone: kept
    ids = ["person_01", "person_02", "person_03"]
    path = write_person_exr(tmp_path / "o.exr", alphas, ids, {"people": ids})
    channels = {n: c.pixels for n, c in OpenEXR.File(str(path), separate_channels=True).channels().items()}
    mattes = np.stack([decode(path, pid) for pid in ids])
    assert mattes[:, 0, 0] == pytest.approx([0.5, 0.5, 0.0])
    assert mattes[:, 1, 1] == pytest.approx([0.2, 0.7, 0.1])
    assert mattes[:, 2, 2] == pytest.approx([0.0, 0.0, 0.4])
    assert mattes.sum(axis=0).max() <= 1.0 + 1e-6
    # rank 0 holds the largest coverage, then rank 1, then rank 2 (layer 01, R/G)
    ranks = [channels["CryptoPerson00.G"], channels["CryptoPerson00.A"], channels["CryptoPerson01.G"]]
    assert (ranks[0] >= ranks[1]).all() and (ranks[1] >= ranks[2]).all()
    assert ranks[0][1, 1] == pytest.approx(0.7) and channels["CryptoPerson00.R"][1, 1] == id_float("person_02")
    # an empty rank has id 0 (specification: "no object in the sample")
    assert channels["CryptoPerson00.R"][3, 4] == 0 and channels["CryptoPerson01.R"][0, 0] == 0
    assert channels["CryptoPerson01.B"].max() == 0  # the unused fourth slot


def test_rank_layers_cover_every_person(tmp_path):
    alphas = np.full((5, 3, 3), 0.2, np.float32)  # five people on every pixel
    ids = [f"person_{n:02d}" for n in range(1, 6)]
    path = write_person_exr(tmp_path / "five.exr", alphas, ids, {"people": ids})
    names = OpenEXR.File(str(path), separate_channels=True).channels()
    assert sorted({n[:14] for n in names if n.startswith(LAYER)}) == [f"{LAYER}0{i}" for i in range(3)]
    for pid in ids:
        assert decode(path, pid) == pytest.approx(np.full((3, 3), 0.2))


def test_labels_name_the_people_and_repeated_labels_stay_apart(tmp_path):
    alphas = _soft_people(count=3, seed=4)
    ids = ["person_01", "person_02", "person_03"]
    labels = {"person_01": "Anna", "person_02": "Stunt double", "person_03": "Anna"}
    path = write_person_exr(tmp_path / "l.exr", alphas, ids, {"people": ids}, labels=labels)
    names = ["Anna (person_01)", "Stunt double", "Anna (person_03)"]
    assert unique_names(ids, labels) == names
    ids_back, back, manifest = read_person_exr(path)
    assert ids_back == ids  # channels keep the person IDs
    assert manifest["labels"] == labels
    assert manifest["cryptomatte"]["names"] == dict(zip(ids, names))
    for k, name in enumerate(names):
        assert np.abs(decode(path, name) - back[k]).mean() <= 0.01


def test_a_frame_without_people_has_an_empty_layer(tmp_path):
    path = write_person_exr(tmp_path / "nobody.exr", np.zeros((0, 5, 7)), [], {"people": []}, shape=(5, 7))
    exr = OpenEXR.File(str(path), separate_channels=True)
    info = crypto_layers(exr.header())[LAYER]
    assert info["manifest"] == {}
    assert not exr.channels()["CryptoPerson00.G"].pixels.any()
    assert exr.channels()["background.A"].pixels.min() == 1.0


@pytest.mark.parametrize("compression", ["zip", "piz", "dwaa"])
@pytest.mark.parametrize("depth", ["half", "float"])
def test_ids_survive_every_compression_and_depth(tmp_path, compression, depth):
    alphas = _soft_people(count=2, seed=2)
    ids = ["person_01", "person_11"]  # person_11's hash has exponent 0: flipped id
    path = write_person_exr(tmp_path / "c.exr", alphas, ids, {"people": ids},
                            options=ExrOptions(compression=compression, depth=depth))
    tolerance = 1e-3 if depth == "half" else 1e-6
    letters = {name[-1] for name in OpenEXR.File(str(path), separate_channels=True).channels() if name.startswith(LAYER)}
    assert letters == (set("rgba") if compression == "dwaa" else set("RGBA"))
    for k, pid in enumerate(ids):
        matte = decode(path, pid)
        assert np.abs(matte - alphas[k]).mean() <= 0.01
        assert np.abs(matte - alphas[k])[alphas.sum(0) <= 1].max() < 1e-6  # crypto is float either way
    _, back, _ = read_person_exr(path)
    assert np.abs(back - alphas).max() < tolerance
