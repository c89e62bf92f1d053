"""``instmatt models`` end to end, as a TD runs it: a subprocess of the engine's Python
against a loopback mirror, into a temporary INSTMATT_CACHE."""

from __future__ import annotations

import os
import subprocess

from .conftest import DETECTOR_FILE


def _run(engine_python, repo_root, tmp_path, *args, **env):
    environment = {key: value for key, value in os.environ.items() if not key.startswith("INSTMATT_")}
    environment.update(OMP_NUM_THREADS="1", TORCH_HOME=str(tmp_path / "torch_home"), PYTHONPATH=str(repo_root))
    environment.update({key: str(value) for key, value in env.items()})
    return subprocess.run([engine_python, "-m", "engine", "models", *args], cwd=repo_root, env=environment,
                          capture_output=True, text=True, timeout=300)


def test_fetch_list_refetch_and_refusals(engine_python, repo_root, tmp_path, loopback, make_mirror, weights_digests):
    url = make_mirror(loopback)
    cache = tmp_path / "cache"

    fetched = _run(engine_python, repo_root, tmp_path, "fetch", "--mirror", url, INSTMATT_CACHE=cache)
    assert fetched.returncode == 0, fetched.stderr
    assert "instmatt: verified" in fetched.stderr and "detector: verified" in fetched.stderr
    assert "100%" in fetched.stderr  # the tqdm bar
    assert (cache / "best_model.pth").is_file() and (cache / DETECTOR_FILE).is_file()

    hits = len(loopback.hits)
    again = _run(engine_python, repo_root, tmp_path, "fetch", "--mirror", url, INSTMATT_CACHE=cache)
    assert again.returncode == 0 and "nothing to download" in again.stderr
    assert len(loopback.hits) == hits

    table = _run(engine_python, repo_root, tmp_path, INSTMATT_CACHE=cache)
    assert table.returncode == 0
    rows = {line.split()[0]: line for line in table.stdout.splitlines()}
    assert "verified" in rows["instmatt"] and str(cache / "best_model.pth") in rows["instmatt"]
    assert "verified" in rows["detector"] and str(cache / DETECTOR_FILE) in rows["detector"]
    assert f"sha256 instmatt: {weights_digests['instmatt']}" in table.stdout

    verify = _run(engine_python, repo_root, tmp_path, "verify", INSTMATT_CACHE=cache)
    assert verify.returncode == 0 and verify.stdout.count("verified") == 2

    bad = make_mirror(folder=tmp_path / "bad", wrong_sha=("instmatt",))
    empty = tmp_path / "fresh"
    refused = _run(engine_python, repo_root, tmp_path, "fetch", "--mirror", bad, INSTMATT_CACHE=empty)
    assert refused.returncode == 2
    errors = [line for line in refused.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "sha256 mismatch for 'instmatt'" in errors[0]
    assert not empty.exists() or list(empty.iterdir()) == []

    offline = _run(engine_python, repo_root, tmp_path, "fetch", "--mirror", url,
                   INSTMATT_CACHE=tmp_path / "empty", INSTMATT_OFFLINE=1)
    assert offline.returncode == 2 and offline.stderr.count("\n") == 1
    assert "instmatt models fetch" in offline.stderr
