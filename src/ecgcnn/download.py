"""PTB-XL from PhysioNet: download file by file, verify every file against SHA256SUMS.txt.

PhysioNet publishes each version of a database with a ``SHA256SUMS.txt`` (``<sha256>  <path>``
per line, sha256sum's format). That listing decides what is fetched (the top-level files plus
``records100/`` and/or ``records500/``) and vouches for every file: a file is written to
``NAME.part`` (resumed with an HTTP Range request after a dropped connection or an interrupted
run) and renamed to ``NAME`` only once its checksum matches. A mismatching file is fetched again,
a few times at most. No entry of the listing may point outside the destination folder.

Only the standard library's urllib is used: PhysioNet serves plain files, so a session library
would add a dependency without removing any code here.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import socket
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from ecgcnn import __version__
from ecgcnn.errors import EcgcnnError

log = logging.getLogger(__name__)

DEFAULT_VERSION = "1.0.3"
DEFAULT_BASE_URL = "https://physionet.org/files/ptb-xl/{version}/"
CHECKSUMS = "SHA256SUMS.txt"
RATE_FOLDERS: dict[str, tuple[str, ...]] = {
    "100": ("records100/",),
    "500": ("records500/",),
    "both": ("records100/", "records500/"),
}
# PTB-XL 1.0.3 lists about 87,000 files in about 9 MB: far more is not a checksum listing.
MAX_CHECKSUMS_BYTES = 64 * 2**20
# Far above any PTB-XL file (the largest, ptbxl_database.csv, is a few MB): bounds what a
# misbehaving server can make us write for one entry.
MAX_FILE_BYTES = 2**30
# A file whose checksum still mismatches after this many complete transfers is given up.
MAX_FETCHES = 3
# After this many files in a row failed after all their retries, the rest are not tried: with the
# network or the server down, retrying each of PTB-XL's 22,000 files would take about a day.
MAX_FAILED_IN_A_ROW = 10
MAX_BACKOFF_S = 60.0
CHUNK_BYTES = 256 * 1024
USER_AGENT = f"ecgcnn/{__version__} (PTB-XL downloader)"
_LISTING_LINE = re.compile(r"([0-9a-fA-F]{64}) [ *](.+)")
_VERSION = re.compile(r"\d+(\.\d+)*")


# --- reports ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileResult:
    """What became of one listed file: ``ok``, ``refetched`` (a checksum mismatch was fetched
    again and now matches) or ``failed`` (``detail`` says why)."""

    path: str
    status: str
    bytes: int = 0
    detail: str = ""
    present: bool = False  # ok without a transfer: the file was already there and matched


@dataclass(frozen=True)
class DownloadReport:
    """One ``download_ptbxl`` run: a result per selected file, in listing order."""

    dest: Path
    url: str
    files: tuple[FileResult, ...]
    skipped: int = 0  # listed files outside the chosen rate(s)

    def _status(self, status: str) -> list[FileResult]:
        return [f for f in self.files if f.status == status]

    @property
    def ok(self) -> list[FileResult]:
        return self._status("ok")

    @property
    def refetched(self) -> list[FileResult]:
        return self._status("refetched")

    @property
    def failed(self) -> list[FileResult]:
        return self._status("failed")

    @property
    def bytes_downloaded(self) -> int:
        return sum(f.bytes for f in self.files)

    @property
    def succeeded(self) -> bool:
        return not self.failed

    def problems(self, limit: int = 20) -> list[str]:
        """One line per failed file (the first ``limit``, then a count of the rest)."""
        lines = [f"{f.path}: {f.detail}" for f in self.failed]
        return _clip(lines, limit)

    def summary(self) -> str:
        present = sum(f.present for f in self.files)
        return (
            f"{len(self.files)} files: {len(self.ok)} ok ({present} already present), "
            f"{len(self.refetched)} re-fetched, {len(self.failed)} failed; "
            f"{_human_bytes(self.bytes_downloaded)} downloaded into {self.dest}"
        )


@dataclass(frozen=True)
class VerifyReport:
    """One ``verify_ptbxl`` check: the selected files that match, are missing or mismatch."""

    root: Path
    ok: tuple[str, ...]
    missing: tuple[str, ...]
    mismatched: tuple[str, ...]
    skipped: int = 0
    unreadable: tuple[str, ...] = ()  # present but not readable (permissions, I/O error)
    # why each is unreadable, and the digests of each mismatch
    reasons: dict[str, str] = field(default_factory=dict, hash=False)

    @property
    def succeeded(self) -> bool:
        return not (self.missing or self.mismatched or self.unreadable)

    def problems(self, limit: int = 20) -> list[str]:
        lines = [f"missing: {p}" for p in self.missing]
        lines += [
            f"unreadable: {p} ({self.reasons.get(p, 'cannot read it')})" for p in self.unreadable
        ]
        lines += [
            f"checksum mismatch: {p}" + (f" ({self.reasons[p]})" if p in self.reasons else "")
            for p in self.mismatched
        ]
        return _clip(lines, limit)

    def summary(self) -> str:
        checked = len(self.ok) + len(self.missing) + len(self.mismatched) + len(self.unreadable)
        unreadable = f", {len(self.unreadable)} unreadable" if self.unreadable else ""
        return (
            f"{checked} files checked in {self.root}: {len(self.ok)} ok, "
            f"{len(self.missing)} missing{unreadable}, {len(self.mismatched)} mismatched"
        )


def _clip(lines: list[str], limit: int) -> list[str]:
    if len(lines) > limit:
        return [*lines[:limit], f"... and {len(lines) - limit} more"]
    return lines


def _human_bytes(n: int) -> str:
    units, size, k = ("B", "kB", "MB", "GB"), float(n), 0
    while size >= 1000 and k < len(units) - 1:
        size, k = size / 1000, k + 1
    return f"{n} B" if k == 0 else f"{size:.1f} {units[k]}"


# --- the listing ------------------------------------------------------------------------------


def check_entry(entry: str, where: str) -> str:
    """Refuse a listed path that could land outside the destination (or is not a plain POSIX
    relative path): absolute, drive-letter, backslash, '..' / '.' / empty components, controls."""
    problem = None
    if not entry or entry != entry.strip():
        problem = "is empty or padded with spaces"
    elif "\\" in entry:
        problem = "contains a backslash"
    elif any(ord(c) < 32 or ord(c) == 127 for c in entry):
        problem = "contains a control character"
    elif entry.startswith("/"):
        problem = "is an absolute path"
    elif re.match(r"[A-Za-z]:", entry):
        problem = "starts with a drive letter"
    elif ".." in entry.split("/"):
        problem = "has a '..' component"
    elif any(part in ("", ".") for part in entry.split("/")):
        problem = "has an empty or '.' component"
    if problem:
        raise EcgcnnError(f"{where}: refusing entry {entry!r}: it {problem}")
    return entry


def parse_checksums(text: str, source: str) -> dict[str, str]:
    """``<sha256>  <path>`` lines (``*path`` in binary mode) as {path: lower-case digest}, in order.

    Every path is checked with :func:`check_entry`; a malformed line or a repeated path is an error
    naming the line, since a listing that is wrong in one place cannot be trusted in the others.
    """
    entries: dict[str, str] = {}
    text = text.removeprefix("\ufeff")  # the byte-order mark of a listing re-saved on Windows
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{source} line {lineno}"
        match = _LISTING_LINE.fullmatch(line)
        if match is None:
            raise EcgcnnError(f"{where}: expected '<64 hex digits>  <path>', got {line[:100]!r}")
        # `sha256sum ./records100/...` writes './'-prefixed paths: the same files
        path = re.sub(r"^(\./)+", "", match.group(2))
        digest, entry = match.group(1).lower(), check_entry(path, where)
        if entry in entries:
            raise EcgcnnError(f"{where}: {entry!r} is listed twice")
        entries[entry] = digest
    if not entries:
        raise EcgcnnError(f"{source}: lists no files")
    return entries


def rate_folders(rate: str | int) -> tuple[str, ...]:
    """The record folders of a rate choice: 100, 500 or both."""
    key = str(rate).strip().lower()
    if key not in RATE_FOLDERS:
        raise EcgcnnError(f"rate {rate!r}: expected 100, 500 or both")
    return RATE_FOLDERS[key]


def select_files(
    entries: dict[str, str], folders: Iterable[str], source: str | None = None
) -> dict[str, str]:
    """The top-level files (metadata, licence...) and those under the chosen record folders.

    With ``source`` (the listing's name), a chosen folder that the listing holds no file of is an
    error: checking or fetching "500 Hz" from a 100 Hz-only listing would otherwise say "ok".
    """
    folders = tuple(folders)
    if source is not None:
        for folder in folders:
            if not any(path.startswith(folder) for path in entries):
                rate = folder.removeprefix("records").rstrip("/")
                raise EcgcnnError(
                    f"{source} lists no files under {folder}: there is nothing to check or "
                    f"fetch for rate {rate}; choose a rate the listing holds"
                )
    return {
        path: digest
        for path, digest in entries.items()
        if ("/" not in path and path != CHECKSUMS) or path.startswith(folders)
    }


def _targets(
    root: Path, entries: Iterable[str], source: str, writing: bool = True
) -> dict[str, Path]:
    """Local paths of the entries (their names were checked: no '..', not absolute). For
    ``writing``, any that resolves outside ``root`` (a symlink under root pointing elsewhere, for
    one) is refused, every entry before anything is written; reading follows such links."""
    base = root.resolve()
    targets = {}
    for entry in entries:
        target = base.joinpath(*entry.split("/"))
        if writing and not target.resolve().is_relative_to(base):
            raise EcgcnnError(f"{source}: refusing entry {entry!r}: it resolves outside {root}")
        targets[entry] = target
    return targets


def _read_listing(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_CHECKSUMS_BYTES + 1)
    except OSError as exc:
        raise EcgcnnError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    if len(data) > MAX_CHECKSUMS_BYTES:
        raise EcgcnnError(
            f"{path}: larger than {_human_bytes(MAX_CHECKSUMS_BYTES)}, not a checksum listing"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EcgcnnError(f"{path}: not UTF-8 text ({exc})") from None


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


# --- HTTP -------------------------------------------------------------------------------------


class _Failed(Exception):
    """A file could not be fetched; the message says why."""


class _GaveUp(_Failed):
    """A file could not be fetched in all the retries the user allowed."""


class _Permanent(Exception):
    """No point in asking again: 404, a refused redirect, a body over the size bound."""


class _Transient(Exception):
    """Worth another attempt: a 5xx, a short body, a server resuming at the wrong byte."""

    def __init__(self, message: str, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay


class _SameOriginRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects on the same scheme and host only: files from another host would be
    vouched for by a listing that host chose, and https must never fall back to http."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        old, new = urllib.parse.urlsplit(req.full_url), urllib.parse.urlsplit(newurl)
        if (old.scheme, old.netloc) != (new.scheme, new.netloc):
            raise _Permanent(
                f"redirect to {newurl} refused (another scheme or host; pass it as --base-url "
                "if you trust it)"
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def resolve_base_url(base_url: str | None, version: str) -> str:
    """The folder URL of one PTB-XL version ('{version}' in ``base_url`` is filled in)."""
    if not _VERSION.fullmatch(version):
        raise EcgcnnError(f"version {version!r}: expected a version number such as 1.0.3")
    url = (base_url or DEFAULT_BASE_URL).replace("{version}", version)
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise EcgcnnError(
            f"base URL {url!r}: expected an http:// or https:// folder URL without query, "
            f"such as {DEFAULT_BASE_URL.replace('{version}', version)}"
        )
    if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        log.warning(
            "%s is plain http: the checksums are only as trustworthy as the connection", url
        )
    return url if url.endswith("/") else url + "/"


def _file_url(base_url: str, entry: str) -> str:
    return base_url + "/".join(urllib.parse.quote(part) for part in entry.split("/"))


def _content_range_start(value: str | None) -> int | None:
    match = re.fullmatch(r"bytes (\d+)-\d+/(\d+|\*)", (value or "").strip())
    return int(match.group(1)) if match else None


def _retry_after(value: str | None) -> float | None:
    try:
        return min(max(float(value), 0.0), MAX_BACKOFF_S) if value else None
    except ValueError:
        return None  # an HTTP date: the exponential backoff will do


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


@dataclass
class _Fetcher:
    """Transfers files into ``NAME.part`` with resume, retries and backoff (thread-safe)."""

    opener: urllib.request.OpenerDirector
    retries: int
    backoff: float
    timeout: float
    stop: threading.Event
    on_bytes: Callable[[int], None]
    # the sockets of the transfers under way, for interrupt() (a copy of each: see _interruptible)
    _sockets: set[socket.socket] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _failed_in_a_row: int = 0

    def _count(self, result: FileResult, gave_up: bool) -> FileResult:
        """Track files that failed in a row after all their retries (any answer resets it)."""
        with self._lock:
            self._failed_in_a_row = self._failed_in_a_row + 1 if gave_up else 0
        return result

    def interrupt(self) -> None:
        """Stop every transfer now, even one blocked on a server gone quiet (Ctrl-C)."""
        self.stop.set()
        with self._lock:
            for sock in self._sockets:
                with suppress(OSError):  # already closed by the other end
                    sock.shutdown(socket.SHUT_RDWR)  # the blocked read returns at once

    @contextmanager
    def _interruptible(self, response: http.client.HTTPResponse) -> Iterator[None]:
        # a duplicate of the response's socket: shutting it down ends the connection itself,
        # and it cannot be a number the system gave to another file after the response closed
        try:
            sock = socket.socket(fileno=os.dup(response.fileno()))
        except OSError:  # a socket is no file on Windows: stop at the next chunk there
            yield
            return
        with self._lock:
            self._sockets.add(sock)
        try:
            yield
        finally:
            with self._lock:
                self._sockets.discard(sock)
            sock.close()

    def fetch_file(self, base_url: str, entry: str, digest: str, target: Path) -> FileResult:
        """Make ``target`` a verified copy of ``entry``; never raises for one file's trouble."""
        received = [0]

        def count(n: int) -> None:
            received[0] += n
            self.on_bytes(n)

        replaced, gave_up = False, False
        part = target.with_name(target.name + ".part")
        try:
            if target.is_file():
                if sha256_file(target) == digest:
                    return FileResult(entry, "ok", present=True)
                log.debug("%s: checksum mismatch, fetching it again", entry)
                replaced = True  # only once the new copy is verified: a failed fetch keeps it
            if self._failed_in_a_row >= MAX_FAILED_IN_A_ROW:
                return FileResult(
                    entry, "failed", detail=f"not tried: {MAX_FAILED_IN_A_ROW} files in a row "
                    "failed (is the network or the server down?); run again to resume",
                )  # fmt: skip
            target.parent.mkdir(parents=True, exist_ok=True)
            for fetch in range(1, MAX_FETCHES + 1):
                self.transfer(_file_url(base_url, entry), part, MAX_FILE_BYTES, count)
                got = sha256_file(part)
                if got == digest:
                    with open(part, "ab") as f:
                        os.fsync(f.fileno())
                    os.replace(part, target)
                    status = "refetched" if fetch > 1 or replaced else "ok"
                    return self._count(FileResult(entry, status, received[0]), gave_up=False)
                part.unlink()
                if fetch < MAX_FETCHES:
                    log.warning("%s: checksum mismatch, fetching it again", entry)
            detail = f"checksum mismatch in {MAX_FETCHES} transfers (expected sha256 {digest}, got {got})"
        except _Failed as exc:
            detail = str(exc)
            gave_up = isinstance(exc, _GaveUp)
        except OSError as exc:  # the local disk: permissions, a full disk, a file in the way
            detail = f"cannot write {target}: {exc.strerror or exc}"
        return self._count(FileResult(entry, "failed", received[0], detail), gave_up)

    def transfer(self, url: str, part: Path, limit: int, count: Callable[[int], None]) -> None:
        """Complete ``part`` from ``url``; retry failures with exponential backoff.

        An attempt that grew the file (a connection dropped half-way) is resumed at once; only
        attempts without progress count against ``retries``, so the loop ends: the file cannot
        grow beyond ``limit``.
        """
        best, failures = _size(part), 0
        while True:
            if self.stop.is_set():
                raise _Failed("interrupted")
            try:
                self._attempt(url, part, limit, count)
                return
            except _Permanent as exc:
                raise _Failed(str(exc)) from None
            except (_Transient, OSError, http.client.HTTPException) as exc:
                reason = _reason(exc)
                delay = exc.delay if isinstance(exc, _Transient) else None
            size = _size(part)
            if size > best:
                best, failures = size, 0
            else:
                failures += 1
                if failures > self.retries:
                    raise _GaveUp(f"{reason} (gave up after {failures} attempts)")
            if delay is None:
                delay = self.backoff * 2 ** (failures - 1) if failures else 0.0
            log.debug("%s: %s; trying again in %.1f s", url, reason, delay)
            if self.stop.wait(min(delay, MAX_BACKOFF_S)):
                raise _Failed("interrupted")

    def _attempt(self, url: str, part: Path, limit: int, count: Callable[[int], None]) -> None:
        start = _size(part)
        headers = {"User-Agent": USER_AGENT}
        if start:
            headers["Range"] = f"bytes={start}-"
        request = urllib.request.Request(url, headers=headers)
        try:
            response = self.opener.open(request, timeout=self.timeout)
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code == 416 and start:
                return  # the part already holds the whole file (or more): the checksum decides
            if exc.code in (408, 425, 429) or exc.code >= 500:
                raise _Transient(
                    f"HTTP {exc.code} {exc.reason}", _retry_after(exc.headers.get("Retry-After"))
                ) from None
            raise _Permanent(f"HTTP {exc.code} {exc.reason}") from None
        with response, self._interruptible(response):
            if response.status == 206:
                first = _content_range_start(response.headers.get("Content-Range"))
                if first != start:
                    part.unlink(missing_ok=True)  # cannot splice this: start over
                    raise _Transient(f"server resumed at byte {first}, not at {start}")
                mode = "ab"
            elif response.status == 200:
                mode, start = "wb", 0  # the server ignored the Range header: start over
            else:
                raise _Transient(f"unexpected HTTP status {response.status}")
            length = response.headers.get("Content-Length", "")
            expected = int(length) if length.isdigit() else None
            if expected is not None and start + expected > limit:
                raise _Permanent(
                    f"the server announces {start + expected} bytes, over the bound of "
                    f"{_human_bytes(limit)}"
                )
            got = 0
            # errors of the local disk are not worth a retry, unlike those of the network
            try:
                f = open(part, mode)  # noqa: SIM115 (closed by the with below)
            except OSError as exc:
                raise _Permanent(f"cannot write {part}: {exc.strerror or exc}") from None
            with f:
                # read1: what arrived is written at once, so a connection that stalls into a
                # timeout keeps it for the resume (read() would drop a partly filled chunk)
                while chunk := response.read1(CHUNK_BYTES):
                    try:
                        f.write(chunk)
                    except OSError as exc:
                        raise _Permanent(f"cannot write {part}: {exc.strerror or exc}") from None
                    got += len(chunk)
                    count(len(chunk))
                    if start + got > limit:
                        raise _Permanent(f"the server sent more than {_human_bytes(limit)}")
                    if self.stop.is_set():
                        raise _Failed("interrupted")
        # http.client returns a short body without complaint when the connection drops
        if expected is not None and got < expected:
            raise _Transient(f"connection closed after {got} of {expected} bytes")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.URLError):
        return f"cannot connect ({exc.reason})"
    if isinstance(exc, _Transient):
        return str(exc)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(_SameOriginRedirects)


# --- download and verify ----------------------------------------------------------------------


def download_ptbxl(
    dest: str | Path,
    version: str = DEFAULT_VERSION,
    rate: str | int = "100",
    base_url: str | None = None,
    jobs: int = 8,
    retries: int = 5,
    progress: bool = True,
    backoff: float = 1.0,
    timeout: float = 60.0,
) -> DownloadReport:
    """Fetch PTB-XL ``version`` into ``dest`` and verify every file against SHA256SUMS.txt.

    ``rate``: 100, 500 or both (the record folders fetched besides the top-level files).
    ``jobs`` files are fetched at a time; a failed request is retried ``retries`` times with
    exponential backoff from ``backoff`` seconds. Files already present and matching are kept;
    running it again completes an interrupted download. Raises EcgcnnError when the listing
    cannot be fetched or is unsafe; single files that fail are in the report.
    """
    folders = rate_folders(rate)
    url = resolve_base_url(base_url, version)
    if jobs < 1 or retries < 0 or backoff < 0 or timeout <= 0:
        raise EcgcnnError(
            f"need jobs >= 1, retries >= 0, backoff >= 0 and timeout > 0; got jobs={jobs}, "
            f"retries={retries}, backoff={backoff}, timeout={timeout}"
        )
    dest = Path(dest)
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EcgcnnError(f"cannot create {dest}: {exc.strerror or exc}") from None

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(desc="PTB-XL", unit="B", unit_scale=True, dynamic_ncols=True)
    lock = threading.Lock()

    def on_bytes(n: int) -> None:
        if bar is not None:
            with lock:
                bar.update(n)

    stop = threading.Event()
    fetcher = _Fetcher(_opener(), retries, backoff, timeout, stop, on_bytes)
    try:
        selected, targets, skipped = _fetch_listing(fetcher, url, dest, folders)
        files = _fetch_all(fetcher, url, selected, targets, jobs, bar, lock)
    finally:
        stop.set()
        if bar is not None:
            bar.close()
    return DownloadReport(dest, url, files, skipped)


def _fetch_listing(
    fetcher: _Fetcher, url: str, dest: Path, folders: tuple[str, ...]
) -> tuple[dict[str, str], dict[str, Path], int]:
    """Fetch, parse and check SHA256SUMS.txt, then publish it in ``dest`` (for verify)."""
    listing_url = url + CHECKSUMS
    part = dest / f"{CHECKSUMS}.part"
    part.unlink(missing_ok=True)  # a listing is never resumed: it may belong to another version
    log.info("fetching %s", listing_url)
    try:
        fetcher.transfer(listing_url, part, MAX_CHECKSUMS_BYTES, fetcher.on_bytes)
        entries = parse_checksums(_read_listing(part), listing_url)
        selected = select_files(entries, folders, listing_url)
        targets = _targets(dest, selected, listing_url)
        os.replace(part, dest / CHECKSUMS)
    except _Failed as exc:
        raise EcgcnnError(f"cannot fetch {listing_url}: {exc}") from None
    finally:
        part.unlink(missing_ok=True)
    return selected, targets, len(entries) - len(selected)


def _fetch_all(
    fetcher: _Fetcher,
    url: str,
    selected: dict[str, str],
    targets: dict[str, Path],
    jobs: int,
    bar: object,
    lock: threading.Lock,
) -> tuple[FileResult, ...]:
    results: dict[str, FileResult] = {}
    pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="ptbxl-download")
    try:
        futures = [
            pool.submit(fetcher.fetch_file, url, entry, digest, targets[entry])
            for entry, digest in selected.items()
        ]
        for future in as_completed(futures):
            result = future.result()
            results[result.path] = result
            if result.status == "failed":
                log.debug("%s failed: %s", result.path, result.detail)
            if bar is not None:
                with lock:
                    bar.set_postfix_str(f"{len(results)}/{len(selected)} files")  # type: ignore[attr-defined]
    except BaseException:
        fetcher.interrupt()  # Ctrl-C: running transfers stop now, what they wrote kept in .part
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown()
    return tuple(results[entry] for entry in selected)


def verify_ptbxl(
    root: str | Path, rate: str | int | None = None, jobs: int = 4, progress: bool = False
) -> VerifyReport:
    """Check a PTB-XL copy against the SHA256SUMS.txt in it.

    ``rate``: 100, 500 or both; None checks the record folders present (records100/ if none is).
    """
    root = Path(root)
    listing = root / CHECKSUMS
    if not root.is_dir():
        raise EcgcnnError(f"{root} does not exist or is not a directory")
    if not listing.is_file():
        raise EcgcnnError(
            f"{listing} not found: a copy made by `ecgcnn download` holds it (PhysioNet publishes "
            f"it beside the data, e.g. {DEFAULT_BASE_URL.replace('{version}', DEFAULT_VERSION)}"
            f"{CHECKSUMS})"
        )
    if rate is None:
        folders = tuple(f for f in RATE_FOLDERS["both"] if (root / f).is_dir()) or ("records100/",)
    else:
        folders = rate_folders(rate)
    if jobs < 1:
        raise EcgcnnError(f"need jobs >= 1, got {jobs}")
    entries = parse_checksums(_read_listing(listing), str(listing))
    selected = select_files(entries, folders, str(listing))
    targets = _targets(root, selected, str(listing), writing=False)  # verify only reads
    reasons: dict[str, str] = {}

    def check(entry: str) -> str:
        try:  # is_file() itself raises when a parent folder cannot be searched
            if not targets[entry].is_file():
                return "missing"
            got = sha256_file(targets[entry])
            if got == selected[entry]:
                return "ok"
            reasons[entry] = f"expected sha256 {selected[entry]}, got {got}"
            return "mismatched"
        except OSError as exc:
            reasons[entry] = exc.strerror or str(exc)
            return "unreadable"

    # hashlib releases the GIL on large buffers: threads overlap reading and hashing
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="ptbxl-verify") as pool:
        statuses = pool.map(check, selected)
        if progress:
            from tqdm import tqdm

            statuses = tqdm(statuses, total=len(selected), desc="verify", unit="file")
        outcome = dict(zip(selected, statuses, strict=True))
    return VerifyReport(
        root,
        ok=tuple(e for e, s in outcome.items() if s == "ok"),
        missing=tuple(e for e, s in outcome.items() if s == "missing"),
        mismatched=tuple(e for e, s in outcome.items() if s == "mismatched"),
        skipped=len(entries) - len(selected),
        unreadable=tuple(e for e, s in outcome.items() if s == "unreadable"),
        reasons=reasons,
    )
