"""The cache with real weights: an authors'-format checkpoint and a real torchvision
Mask R-CNN state dict, served by the loopback server, fetched, verified, refused."""

from __future__ import annotations

import json
import shutil

import pytest

from engine.errors import UserError
from engine.registry import ModelStore, download
from engine.registry.mirror import write_mirror
from engine.registry.store import INDEX_NAME

from .conftest import DETECTOR_FILE


def _final_files(root):
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def test_fetch_from_mirror_url_verifies_both_and_second_run_is_a_no_op(loopback, make_mirror, tmp_path,
                                                                         weights_digests, no_torch_hub):
    url = make_mirror(loopback)
    store = ModelStore(tmp_path / "cache")
    progress = []
    states = store.fetch(mirror=url, progress=lambda name, done, total: progress.append((name, done, total)))
    assert [(s.name, s.status) for s in states] == [("instmatt", "verified"), ("detector", "verified")]
    assert {s.name: s.sha256 for s in states} == weights_digests
    assert _final_files(store.root) == sorted(["best_model.pth", DETECTOR_FILE, INDEX_NAME])
    assert {name for name, _, _ in progress} == {"instmatt", "detector"}
    assert progress[-1][1] == progress[-1][2] == states[1].size
    index = json.loads((store.root / INDEX_NAME).read_text())
    assert index["detector"]["sha256"] == weights_digests["detector"]

    before = len(loopback.hits)
    again = store.fetch(mirror=url)
    assert [s.status for s in again] == ["verified", "verified"]
    assert len(loopback.hits) == before  # not a byte, not even models.json


def test_wrong_sha_in_models_json_is_refused_and_nothing_is_left(loopback, make_mirror, tmp_path, no_torch_hub):
    url = make_mirror(loopback, wrong_sha=("detector",))
    store = ModelStore(tmp_path / "cache")
    with pytest.raises(UserError, match=r"^http://127\.0\.0\.1:\d+/mirror/maskrcnn\S+\.pth: sha256 mismatch for "
                                        r"'detector'.*nothing of it was kept$") as info:
        store.fetch(mirror=url)
    assert "\n" not in str(info.value)
    # instmatt verified, but it came from a mirror that vouched for a wrong file: not kept either
    assert _final_files(store.root) == []
    assert [s.status for s in store.states()] == ["missing", "missing"]


def test_interrupted_fetch_resumes_with_range(loopback, make_mirror, tmp_path, no_torch_hub):
    url = make_mirror(loopback, names=("detector",))
    loopback.drops["/mirror/" + DETECTOR_FILE] = [60_000_000, 1]
    store = ModelStore(tmp_path / "cache")
    with pytest.raises(UserError, match="broke off") as info:
        store.fetch(["detector"], mirror=url, retries=0)
    assert "\n" not in str(info.value)
    part = store.part_path("detector")
    assert 0 < part.stat().st_size <= 60_000_000
    assert store.state("detector").status == "missing"  # a half file never has the final name
    kept = part.stat().st_size
    (state,) = store.fetch(["detector"], mirror=url)
    assert state.status == "verified" and not part.exists()
    assert loopback.file_hits()[-1].range == f"bytes={kept}-"


def test_dropped_connection_is_resumed_within_one_fetch(loopback, make_mirror, tmp_path, no_torch_hub):
    url = make_mirror(loopback, names=("detector",))
    loopback.drops["/mirror/" + DETECTOR_FILE] = [50_000_000, 1]
    store = ModelStore(tmp_path / "cache")
    (state,) = store.fetch(["detector"], mirror=url)
    assert state.status == "verified"
    first, second = loopback.file_hits()
    assert first.range is None and first.sent == 50_000_000 and second.status == 206
    resumed_at = int(second.range[len("bytes="):-1])  # what reached the disk before the drop
    assert 0 < resumed_at <= first.sent and resumed_at + second.sent == state.size


def test_mirror_folder_written_from_the_cache_serves_another_cache_offline(loopback, make_mirror, tmp_path,
                                                                         weights_digests, no_torch_hub):
    online = ModelStore(tmp_path / "online")
    online.fetch(mirror=make_mirror(loopback))
    folder = tmp_path / "studio"
    messages = []
    index = write_mirror(online.states(), folder, report=messages.append)
    listed = json.loads(index.read_text())["models"]
    assert {name: entry["sha256"] for name, entry in listed.items()} == weights_digests
    assert listed["detector"]["file"] == DETECTOR_FILE and (folder / "best_model.pth").is_file()

    farm = ModelStore(tmp_path / "farm")
    states = farm.fetch(mirror=str(folder), offline=True)  # a folder is no network
    assert [s.status for s in states] == ["verified", "verified"]
    assert [s.sha256 for s in states] == [weights_digests["instmatt"], weights_digests["detector"]]
    write_mirror(online.states(), folder, report=messages.append)
    assert any(message.startswith("kept ") for message in messages)


def test_offline_with_an_empty_cache_names_the_fetch_command(loopback, make_mirror, tmp_path, no_torch_hub, monkeypatch):
    url = make_mirror(loopback)
    store = ModelStore(tmp_path / "cache")
    with pytest.raises(UserError, match=r"offline.*instmatt models fetch detector") as info:
        store.fetch(["detector"], mirror=url, offline=True)
    assert "\n" not in str(info.value)
    monkeypatch.setenv("INSTMATT_OFFLINE", "1")
    with pytest.raises(UserError, match="instmatt models fetch"):
        store.fetch(mirror=url)
    assert loopback.hits == []  # not even models.json


def test_mirror_named_by_its_models_json(loopback, make_mirror, tmp_path, no_torch_hub):
    url = make_mirror(loopback, names=("detector",))
    (state,) = ModelStore(tmp_path / "cache").fetch(["detector"], mirror=url.rstrip("/"))
    assert state.status == "verified"
    (state,) = ModelStore(tmp_path / "cache2").fetch(["detector"], mirror=url + "models.json")
    assert state.status == "verified"


def test_mirror_without_the_model_is_one_line(loopback, make_mirror, tmp_path, no_torch_hub):
    url = make_mirror(loopback, names=("detector",))
    with pytest.raises(UserError, match="has no 'instmatt' in its models.json"):
        ModelStore(tmp_path / "cache").fetch(mirror=url)
    assert loopback.file_hits() == []


def test_drive_path_fetches_the_authors_checkpoint(loopback, authors_checkpoint, weights_digests, tmp_path,
                                                   monkeypatch):
    monkeypatch.setenv(download.DRIVE_URL_ENV, loopback.url + "/drive/uc")
    loopback.drive_files["1i_zQEqSG2i86G2jSz2IxgbanfyWqu-BF"] = authors_checkpoint
    store = ModelStore(tmp_path / "cache")
    (state,) = store.fetch(["instmatt"])
    assert state.status == "verified" and state.sha256 == weights_digests["instmatt"]  # recorded at first fetch
    assert [hit.path for hit in loopback.hits] == ["/drive/uc", "/drive/download"]


def test_drive_serving_the_wrong_kind_of_file_is_refused(loopback, random_detector_weights, tmp_path, monkeypatch):
    monkeypatch.setenv(download.DRIVE_URL_ENV, loopback.url + "/drive/uc")
    loopback.drive_files["1i_zQEqSG2i86G2jSz2IxgbanfyWqu-BF"] = random_detector_weights
    store = ModelStore(tmp_path / "cache")
    with pytest.raises(UserError, match="not an InstMatt checkpoint.*nothing of it was kept"):
        store.fetch(["instmatt"])
    assert _final_files(store.root) == []


def test_verify_deletes_a_tampered_file(loopback, make_mirror, tmp_path, no_torch_hub):
    store = ModelStore(tmp_path / "cache")
    store.fetch(["instmatt"], mirror=make_mirror(loopback, names=("instmatt",)))
    path = store.cache_path("instmatt")
    with open(path, "r+b") as handle:  # zero some weights: it still loads, but is not the file fetched
        handle.seek(path.stat().st_size // 2)
        handle.write(b"\0" * 4096)
    assert store.state("instmatt").status == "fetched"  # changed since it was verified
    with pytest.raises(UserError, match="sha256 mismatch.*recorded when it was fetched.*the file was deleted"):
        store.verify("instmatt")
    assert not path.exists() and store.state("instmatt").status == "missing"


def test_torchvision_cache_counts_as_present_and_is_never_deleted(random_detector_weights, tmp_path, no_torch_hub):
    hub_file = no_torch_hub / "checkpoints" / DETECTOR_FILE
    hub_file.parent.mkdir(parents=True)
    shutil.copyfile(random_detector_weights, hub_file)
    store = ModelStore(tmp_path / "cache")
    state = store.state("detector")
    assert (state.status, state.path, state.where) == ("fetched", hub_file, "torch hub cache")
    assert store.locate("detector") == hub_file
    # random weights cannot hash to torchvision's bf2d0c1e prefix: refused, but left alone
    with pytest.raises(UserError, match=r"promises a hash starting bf2d0c1e.*torchvision's copy is left alone"):
        store.verify("detector")
    assert hub_file.is_file()


def test_torch_hub_folder_without_importing_torch_follows_torchs_rule(tmp_path, repo_root):
    import subprocess
    import sys

    code = ("import sys; from engine.registry import ModelStore; "
            "print(ModelStore().torch_hub_folder('detector')); print('torch' in sys.modules); "
            "import torch; print(torch.hub.get_dir())")
    for env in ({"TORCH_HOME": str(tmp_path / "th")}, {"XDG_CACHE_HOME": str(tmp_path / "xdg")}):
        env.update(PATH="/usr/bin:/bin", HOME=str(tmp_path), INSTMATT_CACHE=str(tmp_path))
        ours, imported, torchs = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                                env=env, check=True, cwd=repo_root).stdout.split()
        assert imported == "False" and ours == str(tmp_path.joinpath(torchs, "checkpoints"))
