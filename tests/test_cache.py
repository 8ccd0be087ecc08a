import json
import logging
import os

import numpy as np
import pytest

from ecgcnn import cache as cache_module
from ecgcnn.cache import load_signals
from ecgcnn.errors import EcgcnnError
from ecgcnn.records import LEADS, load_database, read_record


def test_cache_holds_every_record_and_reloads_without_reading_wfdb(
    synthetic_root, tmp_path, monkeypatch
):
    db = load_database(synthetic_root)
    signals = load_signals(db, 100, tmp_path / "c", progress=False)
    assert signals.data.shape == (len(db.records), 12, 1000)
    assert np.array_equal(signals.ecg_ids, db.records.index.to_numpy())
    eid = int(signals.ecg_ids[7])
    direct, _ = read_record(db.record_path(eid, 100))
    np.testing.assert_array_equal(signals.data[7], direct.T)

    def fail(*args, **kwargs):
        raise AssertionError("the cache was rebuilt")

    monkeypatch.setattr(cache_module, "read_record", fail)
    again = load_signals(db, 100, tmp_path / "c", progress=False)
    assert isinstance(again.data, np.memmap)
    np.testing.assert_array_equal(again.data[7], signals.data[7])


def test_changed_root_rebuilds_the_cache(synthetic_copy, tmp_path):
    db = load_database(synthetic_copy)
    first = load_signals(db, 100, tmp_path / "c", progress=False)
    before = np.array(first.data[0])
    # Rewrite record 1 with other samples (same size: only the mtime tells).
    rec = db.record_path(int(first.ecg_ids[0]), 100)
    dat = rec.with_suffix(".dat")
    other = db.record_path(int(first.ecg_ids[1]), 100).with_suffix(".dat")
    dat.write_bytes(other.read_bytes())
    os.utime(dat, ns=(dat.stat().st_atime_ns, dat.stat().st_mtime_ns + 10_000_000))
    second = load_signals(db, 100, tmp_path / "c", progress=False)
    assert not np.array_equal(np.asarray(second.data[0]), before)
    np.testing.assert_array_equal(second.data[0], first.data[1])


def test_interrupted_build_leaves_no_trusted_cache(synthetic_root, tmp_path, monkeypatch):
    db = load_database(synthetic_root)
    calls = {"n": 0}
    real = cache_module.read_record

    def interrupt_after_ten(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 10:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(cache_module, "read_record", interrupt_after_ten)
    with pytest.raises(KeyboardInterrupt):
        load_signals(db, 100, tmp_path / "c", progress=False)
    assert not list((tmp_path / "c").glob("manifest_*"))
    assert not list((tmp_path / "c").glob("*.tmp"))
    monkeypatch.setattr(cache_module, "read_record", real)
    signals = load_signals(db, 100, tmp_path / "c", progress=False)
    assert signals.data.shape[0] == len(db.records)
    assert np.abs(np.asarray(signals.data[-1])).sum() > 0


def test_damaged_cache_file_is_rebuilt(synthetic_root, tmp_path):
    db = load_database(synthetic_root)
    first = np.array(load_signals(db, 100, tmp_path / "c", progress=False).data[:3])
    npy = tmp_path / "c" / "signals_100hz.npy"
    npy.write_bytes(npy.read_bytes()[: npy.stat().st_size // 2])
    again = load_signals(db, 100, tmp_path / "c", progress=False)
    np.testing.assert_array_equal(again.data[:3], first)


def test_missing_and_corrupt_records_error_or_skip(synthetic_copy, tmp_path, caplog):
    db = load_database(synthetic_copy)
    ids = db.records.index.to_numpy()
    db.record_path(int(ids[2]), 100).with_suffix(".dat").unlink()
    corrupt = db.record_path(int(ids[5]), 100).with_suffix(".dat")
    corrupt.write_bytes(corrupt.read_bytes()[:1000])
    with pytest.raises(EcgcnnError, match=r"2 record\(s\) missing or unreadable.*--skip-missing"):
        load_signals(db, 100, tmp_path / "c", progress=False)
    with caplog.at_level(logging.WARNING):
        signals = load_signals(db, 100, tmp_path / "c", skip_missing=True, progress=False)
    assert "skipping 2" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):  # loaded again (the report, the next model): said once
        again = load_signals(db, 100, tmp_path / "c", skip_missing=True, progress=False)
    assert "skipping" not in caplog.text and len(again.ecg_ids) == len(ids) - 2
    assert len(signals.ecg_ids) == len(ids) - 2
    assert ids[2] not in signals.ecg_ids and ids[5] not in signals.ecg_ids
    manifest = json.loads((tmp_path / "c" / "manifest_100hz.json").read_text())
    assert set(manifest["failed"]) == {str(ids[2]), str(ids[5])}
    # the file holds the readable records alone, in ecg_id order, and nothing after them
    npy = tmp_path / "c" / "signals_100hz.npy"
    plain = np.load(npy)  # its header says the shape it has
    assert plain.shape == (len(ids) - 2, 12, 1000) == tuple(manifest["shape"])
    assert npy.stat().st_size == np.load(npy, mmap_mode="r").offset + plain.nbytes
    np.testing.assert_array_equal(signals.ecg_ids, np.sort(signals.ecg_ids))
    for k in (0, 2, 3, len(ids) - 3):
        record, _ = read_record(db.record_path(int(signals.ecg_ids[k]), 100), LEADS)
        np.testing.assert_allclose(plain[k], record.T, atol=1e-6)


def test_rate_without_records_is_an_error(synthetic_root, tmp_path):
    db = load_database(synthetic_root)
    with pytest.raises(
        EcgcnnError, match="no records500/ folder for --fs 500; it has records100/: use --fs 100"
    ):
        load_signals(db, 500, tmp_path / "c", progress=False)
    with pytest.raises(EcgcnnError, match="sampling rate 250"):
        load_signals(db, 250, tmp_path / "c", progress=False)


def test_a_root_without_its_record_folders_names_a_few_of_them(synthetic_root, tmp_path):
    """Records named under many folders the root lacks: the error names three, not hundreds."""
    from ecgcnn.cache import rate_to_read

    db = load_database(synthetic_root)
    db.records["filename_lr"] = [f"export{i}/rec_{i}" for i in db.records.index]
    db.records["filename_hr"] = [f"export{i}/rec_{i}_hr" for i in db.records.index]
    with pytest.raises(EcgcnnError) as exc:
        rate_to_read(db, 100)
    message = str(exc.value)
    assert "has no export1/, export10/, export100/ folder (and more)" in message, message
    assert len(message) < 300, message


def test_modified_or_foreign_cache_file_of_the_same_size_is_rebuilt(
    synthetic_root, tmp_path, caplog
):
    db = load_database(synthetic_root)
    first = np.array(load_signals(db, 100, tmp_path / "c", progress=False).data[:3])
    npy = tmp_path / "c" / "signals_100hz.npy"
    raw = bytearray(npy.read_bytes())
    raw[-4000:] = bytes(4000)  # same size, other samples
    npy.write_bytes(bytes(raw))
    with caplog.at_level(logging.INFO):
        again = load_signals(db, 100, tmp_path / "c", progress=False)
    assert "stale or damaged: rebuilding" in caplog.text
    np.testing.assert_array_equal(again.data[:3], first)
    assert np.abs(np.asarray(again.data[-1])).sum() > 0


def test_reader_workers_leave_ctrl_c_to_the_parent(synthetic_root, monkeypatch):
    """Ctrl-C reaches the whole process group: workers that are still starting would each print a
    traceback. They ignore it; the parent stops the pool."""
    import multiprocessing
    import signal

    db = load_database(synthetic_root)
    paths = [str(db.record_path(int(i), 100)) for i in db.records.index[:20]] * 40  # 25 chunks
    monkeypatch.setattr(cache_module, "PARALLEL_MIN_RECORDS", 2)
    monkeypatch.setattr(cache_module.os, "cpu_count", lambda: 2)
    # Python's own handler, whatever this process was started with: a job put in the background by
    # a shell without job control starts with SIGINT ignored (and rightly gets that back)
    started_with = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        reads = cache_module._read_all(paths, 100, 1000)
        first = next(reads)
        workers = multiprocessing.active_children()
        assert workers and isinstance(first, np.ndarray)
        for worker in workers:
            os.kill(worker.pid, signal.SIGINT)
        rest = list(reads)  # no worker died of it
        assert len(rest) == len(paths) - 1 and all(isinstance(r, np.ndarray) for r in rest)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the parent's is back
    finally:
        signal.signal(signal.SIGINT, started_with)


@pytest.fixture(scope="session")
def session_built_cache(synthetic_root):
    """A session fixture that builds a record cache, as served_checkpoint's training does."""
    return load_signals(load_database(synthetic_root), 100, progress=False)


def test_session_fixtures_keep_record_caches_out_of_the_users_cache(
    session_built_cache, tmp_path_factory, user_cache
):
    """A session fixture's record cache goes under the test session's folder too, not to the
    user's (where 48 folders of deleted pytest roots had piled up, 1.1 GB, before the isolation was
    made session-wide)."""
    from pathlib import Path

    base = tmp_path_factory.getbasetemp().resolve()
    assert Path(os.environ["ECGCNN_CACHE"]).resolve().is_relative_to(base)
    leaked = []
    for manifest in user_cache.glob("*/manifest_*.json"):
        root = json.loads(manifest.read_text()).get("root", "")
        if root and Path(root).is_relative_to(base):
            leaked.append(manifest)
    assert not leaked, f"record caches of this test session written to {user_cache}: {leaked}"
