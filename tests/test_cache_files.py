"""`ecgcnn cache list|clear`: what the cache folders hold, whether a run can use each file, removing them."""

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from ecgcnn import cache as cache_module
from ecgcnn.cache import LEFTOVER_AGE_S, default_cache_dir, load_signals, scan_caches
from ecgcnn.errors import EcgcnnError
from ecgcnn.records import load_database


def ecgcnn(*args, env=None):
    return subprocess.run([sys.executable, "-m", "ecgcnn", *map(str, args)], capture_output=True,
                          text=True, env=(env or os.environ) | {"PYTHONWARNINGS": "ignore"},
                          stdin=subprocess.DEVNULL, timeout=300)  # fmt: skip


def by_state(files):
    return {(f.folder.name, f.kind, f.name): ("current" if f.usable else f.note) for f in files}


@pytest.fixture
def base(tmp_path, monkeypatch):
    """$ECGCNN_CACHE of its own (brackets in its name: printed as they are, not as rich markup)."""
    base = tmp_path / "[red]cache"
    monkeypatch.setenv("ECGCNN_CACHE", str(base))
    return base


def make_root(synthetic_root, where):
    return shutil.copytree(synthetic_root, where)


def test_scan_says_which_files_a_run_can_use_and_why_not(synthetic_root, tmp_path, base):
    kept = make_root(synthetic_root, tmp_path / "kept" / "ptbxl")
    gone = make_root(synthetic_root, tmp_path / "gone" / "ptbxl")
    changed = make_root(synthetic_root, tmp_path / "changed" / "ptbxl")
    for root in (kept, gone, changed):
        load_signals(load_database(root), 100, progress=False, baseline="highpass")
    shutil.rmtree(gone)
    db = load_database(changed)
    dat = db.record_path(int(db.records.index[0]), 100).with_suffix(".dat")
    os.utime(dat, ns=(dat.stat().st_atime_ns, dat.stat().st_mtime_ns + 10**9))
    k, g, c = (default_cache_dir(r).name for r in (kept, gone, changed))

    states = by_state(scan_caches())
    assert states == {
        (k, "records", "100 Hz"): "current",
        (k, "treated", "100 Hz, baseline highpass"): "current",
        (g, "records", "100 Hz"): "data root not found (deleted, moved or unmounted)",
        (g, "treated", "100 Hz, baseline highpass"): "its record cache: "
        + "data root not found (deleted, moved or unmounted)",
        (c, "records", "100 Hz"): "data root changed since",
        (c, "treated", "100 Hz, baseline highpass"): "its record cache: data root changed since",
    }
    files = {(f.folder.name, f.kind): f for f in scan_caches()}
    kept_records = files[(k, "records")]
    assert kept_records.root == str(kept.resolve()) and kept_records.records == len(db.records)
    assert kept_records.bytes == sum(p.stat().st_size for p in kept_records.paths)
    assert [p.name for p in kept_records.paths] == ["signals_100hz.npy", "manifest_100hz.json"]

    # the changed root's next run rebuilds its record cache: the treated file is then an earlier one's
    load_signals(load_database(changed), 100, progress=False)
    states = by_state(scan_caches())
    assert states[(c, "records", "100 Hz")] == "current"
    assert states[(c, "treated", "100 Hz, baseline highpass")] == "from an earlier record cache"


def test_scan_finds_interrupted_builds_damaged_files_and_another_filter(
    synthetic_root, tmp_path, base, monkeypatch
):
    root = make_root(synthetic_root, tmp_path / "ptbxl")
    load_signals(load_database(root), 100, progress=False, baseline="median")
    folder = default_cache_dir(root)
    name = folder.name
    cut = np.lib.format.open_memmap(folder / "signals_500hz.npy", "w+", np.float32, (3, 12, 5000))
    del cut  # an array of ECGs without its manifest: a build cut short, or publishing it now
    (folder / "signals_250hz.npy").write_bytes(b"not an array of ECGs")  # not ecgcnn's: not listed
    np.save(
        folder / "signals_100hz_clean.npy", np.zeros((3, 12, 1000), np.float32)
    )  # no such baseline
    old = folder / "signals_100hz.npy1a2b.tmp"
    old.write_bytes(b"x" * 10)
    os.utime(old, (time.time() - LEFTOVER_AGE_S - 60,) * 2)
    (folder / "signals_100hz_highpass.npy3c4d.tmp").write_bytes(b"y")
    (folder / "notes.txt").write_text("mine")  # not ecgcnn's: never listed
    states = by_state(scan_caches(folder))  # one cache folder (--cache-dir) is scanned too
    assert states == {
        (name, "records", "100 Hz"): "current",
        (name, "records", "500 Hz"): "no manifest yet (a build, maybe running; kept a day)",
        (name, "treated", "100 Hz, baseline median"): "current",
        (name, "temporary", old.name): "interrupted build",
        (
            name,
            "temporary",
            "signals_100hz_highpass.npy3c4d.tmp",
        ): "a build, maybe running (kept a day)",
    }
    os.utime(folder / "signals_500hz.npy", (time.time() - LEFTOVER_AGE_S - 60,) * 2)
    cut = {f.name: f for f in scan_caches()}["500 Hz"]
    assert (cut.note, cut.running, cut.unused) == ("no manifest (interrupted build)", False, True)
    with monkeypatch.context() as mp:
        mp.setattr(cache_module, "baseline_signature", lambda how, fs: "another")
        assert by_state(scan_caches())[(name, "treated", "100 Hz, baseline median")] == (
            "another filter (ecgcnn, scipy)"
        )
    manifest = folder / "manifest_100hz_median.json"
    saved = manifest.read_text()
    manifest.write_text(json.dumps(json.loads(saved) | {"format": 99}))  # another version's
    assert by_state(scan_caches())[(name, "treated", "100 Hz, baseline median")] == (
        f"cache format 99 (this ecgcnn: {cache_module.CACHE_FORMAT})"
    )
    manifest.write_text(saved)
    npy = folder / "signals_100hz.npy"
    with open(npy, "r+b") as f:  # same size, written after its manifest
        f.seek(-4, 2)
        f.write(b"\0\0\0\0")
    os.utime(npy, ns=(npy.stat().st_atime_ns, npy.stat().st_mtime_ns + 10**9))
    assert by_state(scan_caches())[(name, "records", "100 Hz")] == "array differs from its manifest"
    (folder / "manifest_100hz.json").write_text("{not json")
    assert by_state(scan_caches())[(name, "records", "100 Hz")].startswith("unreadable manifest")


def test_cache_clear_data_root_finds_its_folder_in_the_cache_dir_named(
    synthetic_root, tmp_path, base
):
    """A cache whose manifest cannot be read is known by its folder's name, in the folder being
    cleared (--cache-dir), whatever $ECGCNN_CACHE says."""
    root = make_root(synthetic_root, tmp_path / "ptbxl")
    load_signals(load_database(root), 100, progress=False)
    (default_cache_dir(root) / "manifest_100hz.json").write_text("{not json")
    env = {k: v for k, v in os.environ.items() if k != "ECGCNN_CACHE"}
    r = ecgcnn("cache", "clear", "--cache-dir", base, "--data-root", root, "--dry-run", env=env)
    assert r.returncode == 0 and "would remove 1 file(s)" in r.stderr, r.stderr


def test_an_empty_ecgcnn_cache_is_unset(monkeypatch):
    monkeypatch.setenv("ECGCNN_CACHE", "")  # not the working folder
    assert cache_module.cache_base() == cache_module.Path.home() / ".cache" / "ecgcnn"


def test_scan_of_nothing_and_of_a_file(tmp_path):
    assert scan_caches(tmp_path / "none") == []
    (tmp_path / "f").write_text("")
    with pytest.raises(EcgcnnError, match="not a folder"):
        scan_caches(tmp_path / "f")


@pytest.mark.slow
def test_cache_clear_unused_keeps_what_runs_use(synthetic_root, tmp_path, base, monkeypatch):
    kept = make_root(synthetic_root, tmp_path / "kept" / "ptbxl")
    gone = make_root(synthetic_root, tmp_path / "gone" / "ptbxl")
    for root in (kept, gone):
        load_signals(load_database(root), 100, progress=False, baseline="highpass")
    shutil.rmtree(gone)
    running = default_cache_dir(kept) / "signals_100hz.npy9z.tmp"
    running.write_bytes(b"a build in progress")
    mine = default_cache_dir(kept) / "notes.txt"
    mine.write_text("mine")
    before = {(f.folder.name, f.name): f.bytes for f in scan_caches()}

    listing = ecgcnn("cache", "list")
    assert listing.returncode == 0, listing.stderr
    assert "data root not found" in listing.stdout and "current" in listing.stdout
    assert "no run can use 2 of them" in listing.stderr
    lines = [json.loads(line) for line in ecgcnn("cache", "list", "--json").stdout.splitlines()]
    assert {(d["kind"], d["usable"]) for d in lines} == {
        ("records", True), ("treated", True), ("records", False), ("treated", False),
        ("temporary", False)}  # fmt: skip

    dry = ecgcnn("cache", "clear", "--unused", "--dry-run")
    assert dry.returncode == 0 and "would remove 2 file(s)" in dry.stderr, dry.stderr
    assert {(f.folder.name, f.name): f.bytes for f in scan_caches()} == before

    done = ecgcnn("cache", "clear", "--unused")
    assert done.returncode == 0, done.stderr
    freed = sum(b for (folder, _), b in before.items() if folder == default_cache_dir(gone).name)
    assert f"freed {freed / 2**20:,.1f} MiB" in done.stderr
    assert "kept 1 file(s) of builds that may be running" in done.stderr
    assert not default_cache_dir(gone).exists()  # emptied, so removed
    assert running.exists() and mine.read_text() == "mine"
    assert by_state(scan_caches()) == {
        (default_cache_dir(kept).name, "records", "100 Hz"): "current",
        (default_cache_dir(kept).name, "treated", "100 Hz, baseline highpass"): "current",
        (default_cache_dir(kept).name, "temporary", running.name): (
            "a build, maybe running (kept a day)"
        ),
    }

    def fail(*args, **kwargs):
        raise AssertionError("a kept cache was rebuilt")

    monkeypatch.setattr(cache_module, "read_record", fail)
    monkeypatch.setattr(cache_module, "remove_baseline_records", fail)
    again = load_signals(load_database(kept), 100, progress=False, baseline="highpass")
    assert isinstance(again.data, np.memmap)


@pytest.mark.slow
def test_cache_clear_all_asks_and_filters_narrow_it(synthetic_root, tmp_path, base):
    one = make_root(synthetic_root, tmp_path / "one" / "ptbxl")
    two = make_root(synthetic_root, tmp_path / "two" / "ptbxl")
    for root in (one, two):
        load_signals(load_database(root), 100, progress=False, baseline="highpass")
    count = len(scan_caches())

    refused = ecgcnn("cache", "clear")  # stdin is not a terminal: no prompt, a one-line error
    assert refused.returncode == 1
    assert refused.stderr.startswith(f"error: remove every record cache in {base} (4 file(s),")
    assert "pass --yes" in refused.stderr and len(scan_caches()) == count

    treated = ecgcnn("cache", "clear", "--treated", "--data-root", one)
    assert treated.returncode == 0, treated.stderr
    assert {(f.folder, f.kind) for f in scan_caches()} == {
        (default_cache_dir(one), "records"), (default_cache_dir(two), "records"),
        (default_cache_dir(two), "treated")}  # fmt: skip

    both = ecgcnn("cache", "clear", "--data-root", two)  # narrowed: no --yes needed
    assert both.returncode == 0, both.stderr
    assert {(f.folder, f.kind) for f in scan_caches()} == {(default_cache_dir(one), "records")}

    everything = ecgcnn("cache", "clear", "--yes")
    assert everything.returncode == 0, everything.stderr
    assert scan_caches() == [] and list(base.iterdir()) == []
    nothing = ecgcnn("cache", "clear", "--yes")
    assert nothing.returncode == 0 and f"nothing to remove in {base}" in nothing.stderr
    typo = ecgcnn("cache", "clear", "--data-root", tmp_path / "nope")
    assert f"nothing of {tmp_path / 'nope'} to remove in {base}" in typo.stderr
    missing = ecgcnn("cache", "list", "--cache-dir", tmp_path / "x")
    assert (
        missing.returncode == 1
        and "--cache-dir" in missing.stderr
        and "no such folder" in missing.stderr
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    assert f"no record caches in {empty}" in ecgcnn("cache", "list", "--cache-dir", empty).stderr

    own = tmp_path / "own"  # a --cache-dir folder: emptied, but kept
    load_signals(load_database(one), 100, own, progress=False)
    assert ecgcnn("cache", "clear", "--cache-dir", own, "--yes").returncode == 0
    assert own.is_dir() and list(own.iterdir()) == []


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="a pseudo-terminal is POSIX")
def test_cache_clear_asks_at_a_terminal_and_no_removes_nothing(synthetic_root, tmp_path, base):
    import pty

    load_signals(load_database(make_root(synthetic_root, tmp_path / "ptbxl")), 100, progress=False)

    def at_terminal(answer: bytes) -> tuple[int, str]:
        leader, follower = pty.openpty()
        proc = subprocess.Popen([sys.executable, "-m", "ecgcnn", "cache", "clear"], stdin=follower,
                                stdout=follower, stderr=follower, close_fds=True,
                                env=os.environ | {"PYTHONWARNINGS": "ignore"})  # fmt: skip
        os.close(follower)
        said = b""
        while b"[y/N]" not in said:
            said += os.read(leader, 4096)
        os.write(leader, answer + b"\n")
        code = proc.wait(timeout=120)
        with contextlib.suppress(OSError):  # the terminal closes with the process
            while chunk := os.read(leader, 4096):
                said += chunk
        os.close(leader)
        return code, said.decode(errors="replace")

    code, said = at_terminal(b"n")
    assert code == 1 and "nothing removed" in said and "interrupted" not in said, said
    assert len(scan_caches()) == 1
    code, said = at_terminal(b"y")
    assert code == 0 and "freed" in said, said
    assert scan_caches() == []
