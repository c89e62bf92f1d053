"""Frame claims: several processes on one output folder split the shot (issue 14.8)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from engine.job.claims import STALE_LOCK_AGE_S, FrameClaims


def test_a_claim_is_exclusive_and_released(tmp_path):
    pattern = str(tmp_path / "out" / "shot.####.exr")
    mine, theirs = FrameClaims(pattern), FrameClaims(pattern)
    assert mine.claim(7)
    lock = mine.lock_path(7)
    owner = json.loads(lock.read_bytes())
    assert owner["pid"] == os.getpid() and owner["host"] == mine.host
    assert not theirs.claim(7)  # held by a live process (this one)
    mine.release(7)
    assert not lock.exists()
    assert theirs.claim(7)
    theirs.release_all()


def test_stale_claims_are_taken_over(tmp_path):
    pattern = str(tmp_path / "shot.####.exr")
    claims = FrameClaims(pattern)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()

    def lock(frame, pid, host, age=0.0):
        path = claims.lock_path(frame)
        path.write_text(json.dumps({"pid": pid, "host": host, "time": time.time() - age, "token": "x"}))
        os.utime(path, (time.time() - age, time.time() - age))

    lock(1, dead.pid, claims.host)  # its writer was killed: taken over
    lock(2, os.getppid(), claims.host)  # a live writer: left alone
    lock(3, dead.pid, "another-node")  # cannot tell on another host: left alone while recent
    lock(4, dead.pid, "another-node", age=STALE_LOCK_AGE_S + 60)  # too old: taken over
    assert [claims.claim(f) for f in (1, 2, 3, 4)] == [True, False, False, True]
    assert json.loads(claims.lock_path(1).read_bytes())["pid"] == os.getpid()
    claims.release_all()
    assert not claims.lock_path(1).exists() and claims.lock_path(2).exists()


@pytest.fixture
def shot(tmp_path):
    frames = 24
    rng = np.random.default_rng(0)
    (tmp_path / "in").mkdir()
    for frame in range(1, frames + 1):
        cv2.imwrite(str(tmp_path / "in" / f"plate.{frame:04d}.png"), rng.integers(0, 255, (160, 240, 3), np.uint8))
        folder = tmp_path / "m" / f"{frame:04d}"
        folder.mkdir(parents=True)
        for k in range(2):
            mask = np.zeros((160, 240), np.uint8)
            mask[20:140, 20 + 100 * k:120 + 100 * k] = 255
            cv2.imwrite(str(folder / f"{k + 1:02d}.png"), mask)
    return tmp_path / "in" / "plate.####.png", tmp_path / "m", frames


def matte_command(engine_python, shot, out, weights):
    pattern, masks, _ = shot
    return [engine_python, "-m", "engine", "matte", str(pattern), "-o", str(out), "--masks", str(masks),
            "--weights", str(weights), "--backend", "pytorch", "--threads", "1", "-q"]


def written(summary: str) -> int:
    return int(re.search(r"instmatt matte: (\d+) frames written", summary).group(1))


def test_two_processes_on_one_folder_split_the_shot(engine_python, repo_root, shot, tmp_path, tiny_weights):
    out = tmp_path / "out"
    command = matte_command(engine_python, shot, out, tiny_weights)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    procs = [subprocess.Popen(command, cwd=repo_root, env=env, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    summaries = [p.communicate(timeout=600)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], summaries
    counts = [written(s) for s in summaries]
    frames = shot[2]
    assert sum(counts) == frames, (counts, summaries)  # every frame computed exactly once
    assert min(counts) > 0, counts  # and both took part
    assert len(list(out.glob("plate.*.exr"))) == frames
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no locks, no temp files left


def test_sigterm_stops_like_ctrl_c_and_a_rerun_completes_the_shot(engine_python, repo_root, shot, tmp_path,
                                                                  tiny_weights):
    """SIGTERM (what farms send): the frame in hand is finished or discarded, exit 143,
    nothing partial, no temp or lock files; the same command then completes the shot (14.6)."""
    import signal

    from engine.io import read_person_exr

    out = tmp_path / "out"
    command = matte_command(engine_python, shot, out, tiny_weights)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(command, cwd=repo_root, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not list(out.glob("plate.*.exr")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=300)[1]
    assert proc.returncode == 143, err
    assert "Traceback" not in err and "stopped early" in err
    done = sorted(out.glob("plate.*.exr"))
    frames = shot[2]
    assert 0 < len(done) < frames
    for path in done:
        read_person_exr(path)
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]
    rerun = subprocess.run(command, cwd=repo_root, env=env, stderr=subprocess.PIPE, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert written(rerun.stderr) == frames - len(done)
    assert len(list(out.glob("plate.*.exr"))) == frames
