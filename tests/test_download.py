"""`ecgcnn download` and `ecgcnn verify` against a real HTTP server on 127.0.0.1.

The server serves a synthetic PTB-XL tree with its SHA256SUMS.txt, supports Range requests and can
be told to misbehave: drop connections half-way, serve a file corrupt, ignore Range, answer with
an error status, redirect, or serve a malicious listing.
"""

from __future__ import annotations

import errno
import hashlib
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ecgcnn import download as dl
from ecgcnn.download import (
    CHECKSUMS,
    download_ptbxl,
    parse_checksums,
    rate_folders,
    resolve_base_url,
    verify_ptbxl,
)
from ecgcnn.errors import EcgcnnError
from ecgcnn.records import load_database, read_record
from ecgcnn.synthetic import write_synthetic_ptbxl

PREFIX = "/files/ptb-xl/1.0.3/"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def listing_of(root: Path) -> str:
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.name != CHECKSUMS)
    return "".join(f"{sha256(p.read_bytes())}  {p.relative_to(root).as_posix()}\n" for p in files)


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic PTB-XL 1.0.3 folder as PhysioNet serves it (both rates, a licence, checksums)."""
    root = write_synthetic_ptbxl(
        tmp_path_factory.mktemp("physionet") / "ptb-xl", n_patients=10, seed=1, rates=(100, 500)
    )
    (root / "LICENSE.txt").write_text("Creative Commons Attribution 4.0 International\n")
    (root / CHECKSUMS).write_text(listing_of(root))
    return root


def listed(tree: Path) -> list[str]:
    return list(parse_checksums((tree / CHECKSUMS).read_text(), "listing"))


@dataclass
class Behaviour:
    """How the server misbehaves; it records every request as (path, Range header)."""

    drop_first: bool = False  # the first response of every file stops half-way
    ignore_range: bool = False  # answer Range requests with the whole file (200)
    corrupt: dict[str, float] = field(default_factory=dict)  # path -> responses to corrupt
    errors: dict[str, list[int]] = field(default_factory=dict)  # path -> statuses to answer first
    redirects: dict[str, str] = field(default_factory=dict)  # path -> Location, once
    listing: bytes | None = None  # served instead of the real SHA256SUMS.txt
    stall: set[str] = field(default_factory=set)  # path -> first response stops half-way, open
    release: threading.Event = field(default_factory=threading.Event)  # ends the stalls
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    served: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ranges(self, path: str) -> list[int]:
        """Start bytes of the Range requests made for ``path``."""
        return [int(re.findall(r"\d+", r)[0]) for p, r in self.requests if p == path and r]


class Handler(BaseHTTPRequestHandler):
    timeout = 10  # a stuck client cannot hold a server thread for long

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        b: Behaviour = self.server.behaviour  # type: ignore[attr-defined]
        root: Path = self.server.root  # type: ignore[attr-defined]
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        if not path.startswith(PREFIX):
            self.send_error(404)
            return
        rel, rng = path[len(PREFIX) :], self.headers.get("Range")
        with b.lock:
            b.requests.append((rel, rng))
            n = b.served[rel]
            b.served[rel] += 1
            status = b.errors[rel].pop(0) if b.errors.get(rel) else None
            location = b.redirects.pop(rel, None)
        if status is not None:
            self.send_error(status)
            return
        if location is not None:
            self.send_response(302)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        file = (root / rel).resolve()
        if rel == CHECKSUMS and b.listing is not None:
            body = b.listing
        elif file.is_relative_to(root.resolve()) and file.is_file():
            body = file.read_bytes()
        else:
            self.send_error(404)
            return
        if n < b.corrupt.get(rel, 0):
            body = (
                body[: len(body) // 2]
                + bytes([body[len(body) // 2] ^ 0xFF])
                + body[len(body) // 2 + 1 :]
            )
        start = (
            int(re.fullmatch(r"bytes=(\d+)-", rng).group(1)) if rng and not b.ignore_range else 0
        )
        if start >= len(body) > 0:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(body)}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        payload = body[start:]
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if rel in b.stall and n == 0:
            self.wfile.write(payload[: len(payload) // 2])
            self.wfile.flush()
            b.release.wait(120)  # a server gone quiet: the connection stays open, nothing comes
            self.close_connection = True
            return
        if b.drop_first and n == 0 and len(payload) > 1:
            self.wfile.write(payload[: len(payload) // 2])
            self.close_connection = True  # the connection ends before Content-Length bytes
            return
        self.wfile.write(payload)


@dataclass
class Server:
    url: str
    port: int
    behaviour: Behaviour
    root: Path


@pytest.fixture
def server(tree: Path, monkeypatch: pytest.MonkeyPatch):
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    httpd.behaviour, httpd.root = Behaviour(), tree  # type: ignore[attr-defined]
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    port = httpd.server_address[1]
    yield Server(f"http://127.0.0.1:{port}/files/ptb-xl/{{version}}/", port, httpd.behaviour, tree)  # type: ignore[attr-defined]
    httpd.behaviour.release.set()  # type: ignore[attr-defined]
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def fetch(dest: Path, server: Server, rate: str = "both", **kw):
    kw = {"jobs": 4, "retries": 2, "backoff": 0.01, "timeout": 10, "progress": False} | kw
    return download_ptbxl(dest, rate=rate, base_url=server.url, **kw)


def a_record_file(tree: Path, suffix: str = "_lr.dat") -> str:
    return next(p for p in listed(tree) if p.endswith(suffix))


def files_under(path: Path) -> set[Path]:
    return {p for p in path.rglob("*")}


# --- complete downloads -----------------------------------------------------------------------


def test_a_complete_download_verifies_and_loads(server: Server, tree: Path, tmp_path: Path):
    dest = tmp_path / "ptbxl"
    report = fetch(dest, server)
    assert report.succeeded, report.problems()
    assert [f.path for f in report.ok] == listed(tree)
    assert report.bytes_downloaded == sum((tree / p).stat().st_size for p in listed(tree))
    for path in listed(tree):
        assert (dest / path).read_bytes() == (tree / path).read_bytes()
    assert not list(dest.rglob("*.part"))
    assert (dest / CHECKSUMS).read_bytes() == (tree / CHECKSUMS).read_bytes()
    check = verify_ptbxl(dest)
    assert check.succeeded and len(check.ok) == len(listed(tree))
    db = load_database(dest)
    assert list(db.records.index) == list(load_database(tree).records.index)
    signal, fs = read_record(db.record_path(int(db.records.index[0]), 500))
    assert signal.shape == (5000, 12) and fs == 500
    assert "0 re-fetched, 0 failed" in report.summary()

    # a second run keeps what matches and fetches nothing but the listing
    server.behaviour.requests.clear()
    again = fetch(dest, server)
    assert again.succeeded and all(f.present for f in again.files)
    assert [p for p, _ in server.behaviour.requests] == [CHECKSUMS]


def test_rate_100_fetches_the_metadata_and_records100_only(server: Server, tree: Path, tmp_path):
    dest = tmp_path / "ptbxl"
    report = fetch(dest, server, rate="100")
    assert report.succeeded
    fetched = {f.path for f in report.files}
    assert {"ptbxl_database.csv", "scp_statements.csv", "LICENSE.txt"} <= fetched
    assert all("/" not in p or p.startswith("records100/") for p in fetched)
    assert not (dest / "records500").exists()
    assert report.skipped == sum(p.startswith("records500/") for p in listed(tree))
    assert verify_ptbxl(dest).succeeded  # checks the folders present
    both = verify_ptbxl(dest, rate="both")
    assert not both.succeeded
    assert set(both.missing) == {p for p in listed(tree) if p.startswith("records500/")}


# --- misbehaving servers ----------------------------------------------------------------------


def test_dropped_connections_are_resumed_with_range_requests(server: Server, tree: Path, tmp_path):
    server.behaviour.drop_first = True
    dest = tmp_path / "ptbxl"
    report = fetch(dest, server)
    assert report.succeeded, report.problems()
    assert not report.refetched  # a resumed file is not a re-fetched one
    for path in listed(tree):
        size = (tree / path).stat().st_size
        if size > 1:
            assert server.behaviour.ranges(path) == [size // 2], path
    assert verify_ptbxl(dest).succeeded


def test_a_part_file_of_an_interrupted_run_is_resumed(server: Server, tree: Path, tmp_path):
    dest = tmp_path / "ptbxl"
    path = a_record_file(tree, "_hr.dat")
    data = (tree / path).read_bytes()
    part = dest / (path + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(data[:1000])
    report = fetch(dest, server)
    assert report.succeeded
    assert server.behaviour.ranges(path) == [1000]
    assert next(f for f in report.files if f.path == path).bytes == len(data) - 1000
    assert (dest / path).read_bytes() == data and not part.exists()


def test_a_connection_gone_quiet_mid_file_is_resumed_after_what_arrived(
    server: Server, tree: Path, tmp_path
):
    # a stall (no close) ends in a timeout: the half that arrived before it is kept and resumed
    path = a_record_file(tree, "_hr.dat")
    size = (tree / path).stat().st_size
    server.behaviour.stall.add(path)
    report = fetch(tmp_path / "ptbxl", server, timeout=0.5)
    assert report.succeeded, report.problems()
    assert server.behaviour.ranges(path) == [size // 2]
    assert next(f for f in report.files if f.path == path).bytes == size


def test_a_server_ignoring_range_restarts_the_file(server: Server, tree: Path, tmp_path):
    server.behaviour.drop_first = server.behaviour.ignore_range = True
    dest = tmp_path / "ptbxl"
    assert fetch(dest, server).succeeded
    assert verify_ptbxl(dest).succeeded


def test_a_stale_part_longer_than_the_file_is_fetched_again(server: Server, tree: Path, tmp_path):
    dest = tmp_path / "ptbxl"
    path = a_record_file(tree)
    part = dest / (path + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(b"x" * ((tree / path).stat().st_size + 10))  # the server answers 416
    report = fetch(dest, server)
    assert report.succeeded
    assert (dest / path).read_bytes() == (tree / path).read_bytes()


def test_a_file_served_corrupt_once_is_fetched_again(server: Server, tree: Path, tmp_path):
    path = a_record_file(tree)
    server.behaviour.corrupt[path] = 1
    dest = tmp_path / "ptbxl"
    report = fetch(dest, server)
    assert report.succeeded
    assert [f.path for f in report.refetched] == [path]
    assert server.behaviour.served[path] == 2
    assert verify_ptbxl(dest).succeeded


def test_a_file_always_corrupt_fails_and_the_others_are_kept(server: Server, tree: Path, tmp_path):
    path = a_record_file(tree)
    server.behaviour.corrupt[path] = math.inf
    dest = tmp_path / "ptbxl"
    report = fetch(dest, server)
    assert not report.succeeded
    data = (tree / path).read_bytes()
    served = (
        data[: len(data) // 2] + bytes([data[len(data) // 2] ^ 0xFF]) + data[len(data) // 2 + 1 :]
    )
    detail = (
        f"checksum mismatch in 3 transfers (expected sha256 {sha256(data)}, got {sha256(served)})"
    )
    assert [(f.path, f.detail) for f in report.failed] == [(path, detail)]
    assert server.behaviour.served[path] == dl.MAX_FETCHES
    assert not (dest / path).exists() and not (dest / (path + ".part")).exists()
    check = verify_ptbxl(dest)
    assert check.missing == (path,) and not check.mismatched
    assert len(check.ok) == len(listed(tree)) - 1
    assert report.problems() == [f"{path}: {detail}"]


def test_a_mismatching_local_file_is_replaced(server: Server, tree: Path, tmp_path):
    dest = tmp_path / "ptbxl"
    assert fetch(dest, server, rate="100").succeeded
    (dest / "scp_statements.csv").write_text("tampered\n")
    report = fetch(dest, server, rate="100")
    assert report.succeeded and [f.path for f in report.refetched] == ["scp_statements.csv"]
    assert (dest / "scp_statements.csv").read_bytes() == (tree / "scp_statements.csv").read_bytes()


def test_a_mismatching_local_file_is_kept_until_its_replacement_is_verified(
    server: Server, tree: Path, tmp_path
):
    """A server that fails must not cost the user the copy they had (it is only replaced)."""
    dest = tmp_path / "ptbxl"
    assert fetch(dest, server, rate="100").succeeded
    (dest / "scp_statements.csv").write_text("my local edit\n")
    server.behaviour.errors = {"scp_statements.csv": [503] * 10}
    report = fetch(dest, server, rate="100", retries=0)
    assert [f.path for f in report.failed] == ["scp_statements.csv"]
    assert (dest / "scp_statements.csv").read_text() == "my local edit\n"


def test_server_errors_are_retried_and_missing_files_are_not(server: Server, tree: Path, tmp_path):
    flaky, gone, down = "scp_statements.csv", "LICENSE.txt", "ptbxl_database.csv"
    server.behaviour.errors = {flaky: [503, 500], gone: [404], down: [503] * 10}
    report = fetch(tmp_path / "ptbxl", server, rate="100", retries=2)
    status = {f.path: f for f in report.files}
    assert status[flaky].status == "ok" and server.behaviour.served[flaky] == 3
    assert status[gone].status == "failed" and "HTTP 404" in status[gone].detail
    assert server.behaviour.served[gone] == 1  # a 404 is not asked again
    assert status[down].status == "failed" and "gave up after 3 attempts" in status[down].detail
    assert {f.path for f in report.failed} == {gone, down}


def test_a_server_gone_down_mid_download_is_not_asked_for_every_remaining_file(
    server: Server, tree: Path, tmp_path, monkeypatch
):
    # 22,000 files, each retried for half a minute, would take a day to report an outage
    monkeypatch.setattr(dl, "MAX_FAILED_IN_A_ROW", 3)
    records = [p for p in listed(tree) if p.startswith("records")]
    server.behaviour.errors = {p: [503] * 10 for p in records}
    dest = tmp_path / "ptbxl"
    report = fetch(dest, server, jobs=1, retries=0)
    assert not report.succeeded
    asked = [p for p in records if server.behaviour.served[p]]
    assert len(asked) == 3, asked
    assert [f.path for f in report.ok] == ["LICENSE.txt", "ptbxl_database.csv"]  # before them
    untried = [f for f in report.failed if f.path not in asked]
    assert len(untried) == len(listed(tree)) - 2 - 3
    assert {f.detail for f in untried} == {
        "not tried: 3 files in a row failed (is the network or the server down?); "
        "run again to resume"
    }
    server.behaviour.errors = {}
    assert fetch(dest, server).succeeded  # once it is back up


def test_redirects_stay_on_the_same_host(server: Server, tmp_path: Path):
    server.behaviour.redirects["LICENSE.txt"] = f"{PREFIX}LICENSE.txt?moved=1"
    report = fetch(tmp_path / "a", server, rate="100")
    assert report.succeeded and server.behaviour.served["LICENSE.txt"] == 2
    # localhost is another host than 127.0.0.1, as far as the URL goes
    server.behaviour.redirects[CHECKSUMS] = f"http://localhost:{server.port}{PREFIX}{CHECKSUMS}"
    with pytest.raises(EcgcnnError, match="redirect to http://localhost.* refused"):
        fetch(tmp_path / "b", server)


# --- unsafe or broken listings ----------------------------------------------------------------


@pytest.mark.parametrize(
    "entry",
    [
        "../evil",
        "/etc/x",
        "records100/../../evil",
        "records100\\..\\evil",
        "C:/evil",
        "a//b",
        "records100/./x",  # a leading "./" is stripped (sha256sum writes it); inner "." is not
    ],
)
def test_a_listing_escaping_dest_is_refused(server: Server, tree: Path, tmp_path, entry):
    server.behaviour.listing = (tree / CHECKSUMS).read_bytes() + f"{'0' * 64}  {entry}\n".encode()
    dest = tmp_path / "dest"
    before = files_under(tmp_path)
    with pytest.raises(EcgcnnError, match=re.escape(repr(entry))):
        fetch(dest, server)
    assert files_under(tmp_path) == before | {dest}  # nothing written, inside or outside
    assert [p for p, _ in server.behaviour.requests] == [CHECKSUMS]
    assert not Path("/etc/x").exists()


def test_a_listing_through_a_symlink_leading_outside_is_refused(server: Server, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "records100").symlink_to(outside, target_is_directory=True)
    with pytest.raises(EcgcnnError, match="resolves outside"):
        fetch(dest, server)
    assert not any(outside.iterdir())


def test_malformed_or_oversized_listings_are_refused(server: Server, tmp_path, monkeypatch):
    server.behaviour.listing = b"0123  LICENSE.txt\n"
    with pytest.raises(EcgcnnError, match="line 1: expected '<64 hex digits>  <path>'"):
        fetch(tmp_path / "a", server)
    server.behaviour.listing = f"{'a' * 64}  x.csv\n".encode() * 100
    monkeypatch.setattr(dl, "MAX_CHECKSUMS_BYTES", 1000)
    with pytest.raises(EcgcnnError, match="announces 7200 bytes, over the bound of 1.0 kB"):
        fetch(tmp_path / "b", server)
    assert not list((tmp_path / "b").iterdir())


def test_no_server_is_a_clear_error(tmp_path: Path):
    with pytest.raises(EcgcnnError, match="cannot fetch .*SHA256SUMS.txt.*cannot connect"):
        download_ptbxl(tmp_path, base_url="http://127.0.0.1:9/x/", retries=0, progress=False)


def test_parse_checksums_reads_sha256sum_output():
    text = f"{'A' * 64}  ptbxl_database.csv\n\n{'b' * 64} *records100/00000/00001_lr.dat\r\n"
    assert parse_checksums(text, "s") == {
        "ptbxl_database.csv": "a" * 64,
        "records100/00000/00001_lr.dat": "b" * 64,
    }
    with pytest.raises(EcgcnnError, match="line 2: 'x' is listed twice"):
        parse_checksums(f"{'a' * 64}  x\n{'b' * 64}  x\n", "s")
    with pytest.raises(EcgcnnError, match="lists no files"):
        parse_checksums("\n", "s")
    # a listing re-saved by Windows Notepad starts with a byte-order mark
    assert parse_checksums(f"\ufeff{'a' * 64}  x\n", "s") == {"x": "a" * 64}


def test_options_are_checked():
    assert rate_folders(100) == ("records100/",)
    assert rate_folders("both") == ("records100/", "records500/")
    with pytest.raises(EcgcnnError, match="expected 100, 500 or both"):
        rate_folders("250")
    assert resolve_base_url(None, "1.0.3") == "https://physionet.org/files/ptb-xl/1.0.3/"
    assert (
        resolve_base_url("https://mirror.example/ptb-xl", "1.0.1")
        == "https://mirror.example/ptb-xl/"
    )
    with pytest.raises(EcgcnnError, match="http:// or https://"):
        resolve_base_url("ftp://physionet.org/files/ptb-xl/{version}/", "1.0.3")
    with pytest.raises(EcgcnnError, match="version number"):
        resolve_base_url(None, "../1.0.3")


# --- verify -----------------------------------------------------------------------------------


def tampered_copy(server: Server, tree: Path, tmp_path: Path) -> tuple[Path, str, str]:
    dest = tmp_path / "ptbxl"
    assert fetch(dest, server).succeeded
    changed, removed = a_record_file(tree, "_lr.dat"), a_record_file(tree, "_hr.hea")
    data = bytearray((dest / changed).read_bytes())
    data[100] ^= 1
    (dest / changed).write_bytes(bytes(data))
    (dest / removed).unlink()
    return dest, changed, removed


def test_verify_lists_tampered_and_missing_files(server: Server, tree: Path, tmp_path: Path):
    dest, changed, removed = tampered_copy(server, tree, tmp_path)
    report = verify_ptbxl(dest)
    assert not report.succeeded
    assert report.mismatched == (changed,) and report.missing == (removed,)
    expected, got = sha256((tree / changed).read_bytes()), sha256((dest / changed).read_bytes())
    assert report.problems() == [
        f"missing: {removed}",
        f"checksum mismatch: {changed} (expected sha256 {expected}, got {got})",
    ]
    with pytest.raises(EcgcnnError, match="SHA256SUMS.txt not found"):
        verify_ptbxl(tmp_path)


# --- the commands -----------------------------------------------------------------------------


def ecgcnn(*args: object) -> subprocess.CompletedProcess:
    env = os.environ | {"PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [sys.executable, "-m", "ecgcnn", *map(str, args)], capture_output=True, text=True, env=env,
        timeout=300,
    )  # fmt: skip


def test_the_download_and_verify_commands(server: Server, tree: Path, tmp_path: Path):
    dest = tmp_path / "ptbxl"
    proc = ecgcnn(
        "download", "--dest", dest, "--base-url", server.url, "--rate", "both", "--no-progress"
    )
    assert proc.returncode == 0, proc.stderr
    n = len(listed(tree))
    assert f"{n} files: {n} ok (0 already present), 0 re-fetched, 0 failed" in proc.stderr
    proc = ecgcnn("verify", dest, "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert f"{n} files checked in {dest}: {n} ok, 0 missing, 0 mismatched" in proc.stderr

    path = a_record_file(tree)
    (dest / path).write_bytes(b"tampered")
    proc = ecgcnn("verify", dest, "--no-progress")
    assert proc.returncode == 1 and f"checksum mismatch: {path}" in proc.stderr

    server.behaviour.corrupt[path] = math.inf
    proc = ecgcnn(
        "download", "--dest", dest, "--base-url", server.url, "--rate", "both", "--no-progress"
    )
    assert proc.returncode == 1
    assert f"failed: {path}: checksum mismatch in 3 transfers" in proc.stderr
    assert f"{n - 1} ok ({n - 1} already present), 0 re-fetched, 1 failed" in proc.stderr


def test_ctrl_c_stops_a_download_stalled_on_a_quiet_server(server: Server, tree: Path, tmp_path):
    path = a_record_file(tree, "_hr.dat")
    server.behaviour.stall.add(path)  # half the file, then nothing for 120 s (the timeout is 60)
    dest = tmp_path / "ptbxl"
    args = ["download", "--dest", dest, "--base-url", server.url, "--rate", "both", "--no-progress"]
    # a shell that starts CI in the background ignores SIGINT: give Ctrl-C its terminal meaning
    proc = subprocess.Popen([sys.executable, "-m", "ecgcnn", *map(str, args)],
                            env=os.environ | {"PYTHONWARNINGS": "ignore"}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    part = dest / (path + ".part")
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (part.is_file() and part.stat().st_size):
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()[1]
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=20)  # not the minute of the read timeout
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130 and "Traceback" not in stderr, stderr
    assert "interrupted: run the same command again to resume" in stderr, stderr
    assert part.read_bytes() == (tree / path).read_bytes()[: (tree / path).stat().st_size // 2]


def test_the_download_command_refuses_a_bad_rate(tmp_path: Path):
    proc = ecgcnn("download", "--dest", tmp_path, "--rate", "250")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "error: rate '250': expected 100, 500 or both" in proc.stderr


def test_verify_refuses_an_unsafe_local_listing(tmp_path: Path):
    (tmp_path / CHECKSUMS).write_text(f"{'0' * 64}  ../outside.csv\n")
    with pytest.raises(EcgcnnError, match="refusing entry '../outside.csv'.*'..' component"):
        verify_ptbxl(tmp_path)


def local_copy(tree: Path, tmp_path: Path) -> Path:
    """A 100 Hz-only copy of the served tree with its own listing (no network needed)."""
    import shutil

    dest = tmp_path / "copy"
    shutil.copytree(tree, dest, ignore=shutil.ignore_patterns("records500", CHECKSUMS))
    (dest / CHECKSUMS).write_text(listing_of(dest))
    return dest


def test_verify_reports_an_unreadable_file_as_unreadable_not_missing(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    dest = local_copy(tree, tmp_path)
    path = a_record_file(dest, "_lr.dat")
    real = dl.sha256_file

    def denied(target: Path) -> str:  # mode 000 as a non-root user sees it (tests may run as root)
        if Path(target) == dest / path:
            raise PermissionError(errno.EACCES, "Permission denied", str(target))
        return real(target)

    monkeypatch.setattr(dl, "sha256_file", denied)
    report = verify_ptbxl(dest)
    assert not report.succeeded and report.missing == () and report.unreadable == (path,)
    assert report.problems() == [f"unreadable: {path} (Permission denied)"]
    assert "0 missing, 1 unreadable" in report.summary()

    # a parent folder without search permission: Path.is_file() itself raises
    monkeypatch.setattr(dl, "sha256_file", real)
    is_file = Path.is_file

    def unsearchable(self: Path) -> bool:
        if self == dest / path:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return is_file(self)

    monkeypatch.setattr(Path, "is_file", unsearchable)
    report = verify_ptbxl(dest)
    assert report.unreadable == (path,) and report.problems() == [
        f"unreadable: {path} (Permission denied)"
    ]


def test_verify_accepts_a_listing_written_with_dot_slash_paths(tree: Path, tmp_path: Path):
    """`sha256sum ./records100/...` writes './'-prefixed paths; they name the same files."""
    dest = local_copy(tree, tmp_path)
    text = (dest / CHECKSUMS).read_text()
    (dest / CHECKSUMS).write_text(re.sub(r"(?m)^([0-9a-f]{64})  ", r"\1  ./", text))
    report = verify_ptbxl(dest)
    assert report.succeeded and len(report.ok) == len(listed(dest))


def test_verify_reads_records_kept_elsewhere_through_a_link(tree: Path, tmp_path: Path):
    """Only download refuses links leading out of the copy (it writes); verify only reads."""
    dest = local_copy(tree, tmp_path)
    (dest / "records100").rename(tmp_path / "big-disk")
    (dest / "records100").symlink_to(tmp_path / "big-disk", target_is_directory=True)
    report = verify_ptbxl(dest)
    assert report.succeeded and len(report.ok) == len(listed(dest))


def test_verify_of_a_rate_the_listing_does_not_hold_is_an_error(tree: Path, tmp_path: Path):
    dest = local_copy(tree, tmp_path)
    with pytest.raises(EcgcnnError, match=r"lists no files under records500/.*rate 500"):
        verify_ptbxl(dest, rate=500)
    assert verify_ptbxl(dest, rate=100).succeeded
