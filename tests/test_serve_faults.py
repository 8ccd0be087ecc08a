"""Load and faults against a real `ecgcnn serve` over TCP: bounded concurrent load, malformed bodies
mixed with good ones, clients that vanish mid-upload or trickle their body, oversized and chunked
uploads, multipart files with unsafe names, and the body timeout. The full-size load figures are
benchmarks/bench_serve.py's job; here every case has a bound and an exact expected answer."""

from __future__ import annotations

import asyncio
import json
import random
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import start_server, stop_server

pytestmark = pytest.mark.slow

EXAMPLES = ("normal", "inferior-mi", "lvh", "atrial-fibrillation")
JSON = {"content-type": "application/json"}
LIMIT = 2 * 1024 * 1024  # live_server runs with --max-body-mb 2


@dataclass
class Answer:
    status: int
    content_type: str
    body: bytes

    def error(self) -> dict[str, Any]:
        assert self.content_type.startswith("application/json"), self
        assert b"Traceback" not in self.body
        return json.loads(self.body)["error"]


def answer(r: httpx.Response) -> Answer:
    return Answer(r.status_code, r.headers.get("content-type", ""), r.content)


@pytest.fixture(scope="module")
def model(live_server: str) -> dict[str, Any]:
    return httpx.get(live_server + "/v1/model", timeout=30).raise_for_status().json()


@pytest.fixture(scope="module")
def bodies(live_server: str) -> list[bytes]:
    """The bundled examples as serialised /v1/predict bodies (12 leads x 10 s at 100 Hz)."""
    with httpx.Client(base_url=live_server, timeout=30) as c:
        return [c.get(f"/v1/examples/{n}").raise_for_status().content for n in EXAMPLES]


def assert_prediction(a: Answer, classes: list[str]) -> None:
    assert a.status == 200, a
    probs = json.loads(a.body)["probabilities"]
    assert set(probs) == set(classes)
    assert all(0.0 <= p <= 1.0 for p in probs.values())


def client(concurrency: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return httpx.AsyncClient(limits=limits, timeout=30)


# --- raw HTTP/1.1 on a socket: what httpx will not do (stall, vanish, trickle) --------------------


def address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def request_head(url: str, *headers: str, path: str = "/v1/predict") -> bytes:
    host, _ = address(url)
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", *headers, "", ""]
    return "\r\n".join(lines).encode()


async def read_answer(reader: asyncio.StreamReader, timeout_s: float = 15) -> Answer:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout_s)
    status_line, *lines = head.decode("latin-1").strip().split("\r\n")
    headers = dict((k.strip().lower(), v.strip()) for k, v in (x.split(":", 1) for x in lines))
    body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), timeout_s)
    return Answer(int(status_line.split()[1]), headers.get("content-type", ""), body)


async def trickle(url: str, body: bytes, piece: int, pause_s: float) -> tuple[Answer, float]:
    """Send ``body`` a few bytes at a time; the answer and the seconds the whole exchange took."""
    start = time.perf_counter()
    reader, writer = await asyncio.open_connection(*address(url))
    try:
        writer.write(
            request_head(url, "Content-Type: application/json", f"Content-Length: {len(body)}")
        )
        reading = asyncio.ensure_future(read_answer(reader))
        for i in range(0, len(body), piece):
            if reading.done():  # answered early (a 408): the server has closed its side
                break
            writer.write(body[i : i + piece])
            await writer.drain()
            await asyncio.sleep(pause_s)
        return await reading, time.perf_counter() - start
    finally:
        writer.close()


async def expect_continue_oversized(url: str) -> Answer:
    """Headers of a too-large body with ``Expect: 100-continue``; the body is never sent."""
    reader, writer = await asyncio.open_connection(*address(url))
    try:
        writer.write(
            request_head(
                url,
                "Content-Type: application/json",
                f"Content-Length: {LIMIT + 1}",
                "Expect: 100-continue",
            )
        )
        await writer.drain()
        return await read_answer(reader)
    finally:
        writer.close()


# --- a. bounded load -------------------------------------------------------------------------------


def test_bounded_load_all_answered_with_every_class(
    live_server: str, model: dict[str, Any], bodies: list[bytes]
) -> None:
    async def main() -> list[Answer]:
        async with client(16) as c:
            queue = iter(range(200))

            async def worker() -> list[Answer]:
                return [
                    answer(
                        await c.post(
                            live_server + "/v1/predict",
                            content=bodies[i % len(bodies)],
                            headers=JSON,
                        )
                    )
                    for i in queue
                ]

            return [
                a for part in await asyncio.gather(*(worker() for _ in range(16))) for a in part
            ]

    answers = asyncio.run(main())
    assert len(answers) == 200
    for a in answers:
        assert_prediction(a, model["classes"])


# --- b. malformed bodies mixed with good ones ----------------------------------------------------


def bad_requests(example: dict[str, Any]) -> list[tuple[str, Any, int, str, str]]:
    """(case, what to send, status, error code, error field) for each malformed request."""

    def body(**change: Any) -> bytes:
        return json.dumps({**example, **change}).encode()

    def without(key: str) -> bytes:
        return json.dumps({k: v for k, v in example.items() if k != key}).encode()

    signal = example["signal"]
    first = json.dumps(signal[2][7]).encode()
    string_sample = [list(r) for r in signal]
    string_sample[0][5] = "x"
    ragged = [r[:-5] if i == 3 else r for i, r in enumerate(signal)]
    bad_leads = [*example["leads"][:-1], "XYZ"]
    text = (body(), {"content-type": "text/plain"})
    multipart = (b"garbage", {"content-type": "multipart/form-data; boundary=x"})
    media = "unsupported_media_type"
    return [
        ("malformed-json", b'{"signal": [[1, 2', 400, "malformed_json", "body"),
        ("empty-body", b"", 400, "malformed_json", "body"),
        ("not-an-object", b"[1, 2]", 422, "invalid_field", "body"),
        ("missing-signal", without("signal"), 422, "invalid_field", "signal"),
        ("signal-not-a-list", body(signal="abc"), 422, "invalid_field", "signal"),
        ("string-sample", body(signal=string_sample), 422, "invalid_field", "signal[0][5]"),
        ("lead-row-missing", body(signal=signal[:-1]), 422, "invalid_shape", "signal"),
        ("ragged-rows", body(signal=ragged), 422, "invalid_shape", "signal[3]"),
        ("nan", body().replace(first, b"NaN", 1), 422, "not_finite", "signal"),
        ("infinity", body().replace(first, b"-Infinity", 1), 422, "not_finite", "signal"),
        ("unknown-lead", body(leads=bad_leads), 422, "unknown_lead", "leads"),
        ("fs-zero", body(fs=0), 422, "invalid_field", "fs"),
        ("bad-units", body(units="mmHg"), 422, "invalid_field", "units"),
        ("extra-field", body(bogus=1), 422, "invalid_field", "bogus"),
        ("too-short-1s", body(signal=[r[:100] for r in signal]), 422, "too_short", "signal"),
        # 200 s at 100 Hz, beyond the default 120 s; zeros keep it well under the 2 MB limit
        ("too-long-200s", body(signal=[[0] * 20_000 for _ in signal]), 422, "too_long", "signal"),
        ("wrong-content-type", text, 415, media, "content-type"),
        ("no-content-type", (body(), {}), 415, media, "content-type"),
        ("malformed-multipart", multipart, 400, "malformed_multipart", "body"),
        ("oversized", expect_continue_oversized, 413, "body_too_large", "body"),
    ]


def test_malformed_bodies_mixed_with_good_ones(
    live_server: str, model: dict[str, Any], bodies: list[bytes]
) -> None:
    example = json.loads(bodies[0])
    cases = bad_requests(example)
    too_long = next(c[1] for c in cases if c[0] == "too-long-200s")
    assert len(too_long) < LIMIT  # a 422 for its duration, not a 413 for its size
    plan: list[tuple[str, Any, int, str, str] | int] = [*cases * 3, *range(60)]
    random.Random(0).shuffle(plan)

    async def send(c: httpx.AsyncClient, item: Any) -> Answer:
        if isinstance(item, int):
            body, headers = bodies[item % len(bodies)], JSON
        else:
            what = item[1]
            if callable(what):
                return await what(live_server)
            body, headers = what if isinstance(what, tuple) else (what, JSON)
        return answer(await c.post(live_server + "/v1/predict", content=body, headers=headers))

    async def main() -> list[Answer]:
        async with client(16) as c:
            sem = asyncio.Semaphore(16)

            async def bounded(item: Any) -> Answer:
                async with sem:
                    return await send(c, item)

            return await asyncio.gather(*(bounded(item) for item in plan))

    for item, got in zip(plan, asyncio.run(main()), strict=True):
        if isinstance(item, int):
            assert_prediction(got, model["classes"])
            continue
        name, _, status, code, field = item
        assert got.status == status, (name, got)
        error = got.error()
        assert (error["status"], error["code"], error["field"]) == (status, code, field), name
        assert error["message"]


# --- c. clients that vanish mid-upload -----------------------------------------------------------


def test_clients_disconnecting_mid_upload_leave_the_server_serving(
    live_server: str, model: dict[str, Any], bodies: list[bytes]
) -> None:
    async def vanish() -> None:
        reader, writer = await asyncio.open_connection(*address(live_server))
        writer.write(
            request_head(live_server, "Content-Type: application/json", "Content-Length: 1000000")
        )
        writer.write(b"[" * 500_000)  # half the declared body, then gone
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    async def main() -> None:
        for _ in range(4):  # one at a time, then several at once
            await vanish()
        await asyncio.gather(*(vanish() for _ in range(8)))

    asyncio.run(main())
    assert httpx.get(live_server + "/healthz", timeout=10).json()["status"] == "ok"
    r = httpx.post(live_server + "/v1/predict", content=bodies[0], headers=JSON, timeout=30)
    assert_prediction(answer(r), model["classes"])


# --- d. slow clients do not hold up the others ----------------------------------------------------


def test_slow_clients_do_not_hold_up_the_others(
    live_server: str, model: dict[str, Any], bodies: list[bytes]
) -> None:
    slow_body = b'{"signal": [[0.0, 0.0]], "fs": 100}'  # 35 bytes, 3 every 0.2 s: about 2.4 s

    async def main() -> tuple[list[tuple[Answer, float]], list[tuple[Answer, float]]]:
        # more slow clients than inference threads: a trickling body must not hold a thread
        slow = [asyncio.create_task(trickle(live_server, slow_body, 3, 0.2)) for _ in range(4)]
        fast: list[tuple[Answer, float]] = []
        async with client(4) as c:
            await asyncio.sleep(0.2)  # the slow ones have started sending
            while not all(t.done() for t in slow) and len(fast) < 200:
                start = time.perf_counter()
                r = await c.post(
                    live_server + "/v1/predict", content=bodies[len(fast) % 4], headers=JSON
                )
                fast.append((answer(r), time.perf_counter() - start))
        return await asyncio.gather(*slow), fast

    slow, fast = asyncio.run(main())
    for a, seconds in slow:
        assert seconds >= 2.0  # it really was slow
        error = a.error()
        assert (a.status, error["code"], error["field"]) == (422, "invalid_shape", "signal")
    assert len(fast) >= 3, "good requests should complete while the slow bodies trickle in"
    for a, seconds in fast:
        assert_prediction(a, model["classes"])
        assert seconds < 3.0, f"a good request took {seconds:.1f} s beside the slow clients"


# --- e. oversized uploads ------------------------------------------------------------------------


def test_oversized_content_length_gets_413_before_the_body(live_server: str) -> None:
    async def main() -> tuple[Answer, float, bytes]:
        reader, writer = await asyncio.open_connection(*address(live_server))
        try:
            start = time.perf_counter()
            writer.write(
                request_head(
                    live_server, "Content-Type: application/json", f"Content-Length: {3 * LIMIT}"
                )
            )
            await writer.drain()  # and not one byte of the body
            got = await read_answer(reader, timeout_s=5)
            seconds = time.perf_counter() - start
            rest = await asyncio.wait_for(reader.read(), 5)  # the server closes the connection
            return got, seconds, rest
        finally:
            writer.close()

    got, seconds, rest = asyncio.run(main())
    error = got.error()
    assert (got.status, error["code"], error["field"]) == (413, "body_too_large", "body")
    assert f"{3 * LIMIT:,}" in error["message"]
    assert seconds < 3.0 and rest == b""


def test_chunked_upload_past_the_limit_gets_413(live_server: str) -> None:
    async def main() -> tuple[Answer, int]:
        reader, writer = await asyncio.open_connection(*address(live_server))
        try:
            writer.write(
                request_head(
                    live_server, "Content-Type: application/json", "Transfer-Encoding: chunked"
                )
            )
            reading = asyncio.ensure_future(read_answer(reader))
            chunk, sent = b"[" * 65536, 0
            # stop once the answer comes: bytes the server never reads would turn its close into
            # a reset, and a reset may discard the answer before we read it
            while not reading.done() and sent <= 2 * LIMIT:
                writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                await writer.drain()
                sent += len(chunk)
                await asyncio.sleep(0.005)
            return await reading, sent
        finally:
            writer.close()

    got, sent = asyncio.run(main())
    error = got.error()
    assert (got.status, error["code"], error["field"]) == (413, "body_too_large", "body")
    assert LIMIT < sent <= 2 * LIMIT + 65536  # the client stopped; the server answered anyway


def test_oversized_body_sent_in_full_gets_413_not_a_reset(live_server: str) -> None:
    async def main() -> list[int | str]:
        out: list[int | str] = []
        async with client(1) as c:
            for _ in range(5):
                try:
                    r = await c.post(
                        live_server + "/v1/predict", content=b" " * (4 * LIMIT), headers=JSON
                    )
                    out.append(r.status_code)
                except httpx.TransportError as exc:
                    out.append(type(exc).__name__)
        return out

    assert asyncio.run(main()) == [413] * 5


# --- f. multipart uploads ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wfdb_pair(synthetic_root: Path) -> tuple[str, bytes, bytes]:
    hea = sorted((synthetic_root / "records100" / "00000").glob("*.hea"))[0]
    return hea.stem, hea.read_bytes(), hea.with_suffix(".dat").read_bytes()


def test_multipart_wfdb_pair_is_predicted(
    live_server: str, model: dict[str, Any], wfdb_pair: tuple[str, bytes, bytes]
) -> None:
    stem, hea, dat = wfdb_pair
    files = [("files", (f"{stem}.hea", hea)), ("files", (f"{stem}.dat", dat))]
    r = httpx.post(live_server + "/v1/predict", files=files, timeout=30)
    assert_prediction(answer(r), model["classes"])
    assert r.json()["record"] == stem


def test_multipart_header_without_its_signal_file_is_422(
    live_server: str, wfdb_pair: tuple[str, bytes, bytes]
) -> None:
    stem, hea, _ = wfdb_pair
    r = httpx.post(live_server + "/v1/predict", files=[("files", (f"{stem}.hea", hea))], timeout=30)
    error = answer(r).error()
    assert (r.status_code, error["code"], error["field"]) == (422, "invalid_record", "files")
    assert f"{stem}.dat" in error["message"]


@pytest.mark.parametrize("prefix", ["../", "../../", "/tmp/", "sub/", "..\\"])
def test_multipart_path_in_file_name_is_422_and_nothing_is_written(
    live_server: str, wfdb_pair: tuple[str, bytes, bytes], prefix: str
) -> None:
    stem, hea, dat = wfdb_pair
    tmp = Path(tempfile.gettempdir())  # the server inherits this process's TMPDIR
    targets = [d / f"{stem}{ext}" for d in (tmp, tmp.parent) for ext in (".hea", ".dat")]
    assert not any(t.exists() for t in targets)
    files = [("files", (f"{prefix}{stem}.hea", hea)), ("files", (f"{prefix}{stem}.dat", dat))]
    r = httpx.post(live_server + "/v1/predict", files=files, timeout=30)
    error = answer(r).error()
    assert (r.status_code, error["code"], error["field"]) == (422, "invalid_file", "files")
    assert not any(t.exists() for t in targets)


@pytest.mark.parametrize("name", ["..", ".hea", "{stem}.exe", "a b.hea", "{stem}"])
def test_multipart_unusable_file_name_is_422(
    live_server: str, wfdb_pair: tuple[str, bytes, bytes], name: str
) -> None:
    stem, hea, _ = wfdb_pair
    files = [("files", (name.format(stem=stem), hea))]
    r = httpx.post(live_server + "/v1/predict", files=files, timeout=30)
    error = answer(r).error()
    assert (r.status_code, error["code"], error["field"]) == (422, "invalid_file", "files")


def test_error_field_does_not_depend_on_the_record_name(
    live_server: str, bodies: list[bytes]
) -> None:
    example = json.loads(bodies[0])
    short = {**example, "signal": [r[:100] for r in example["signal"]], "name": "lead-free test"}
    r = httpx.post(live_server + "/v1/predict", json=short, timeout=30)
    error = answer(r).error()
    assert (r.status_code, error["code"], error["field"]) == (422, "too_short", "signal")


def test_upload_errors_do_not_reveal_server_paths(
    live_server: str, wfdb_pair: tuple[str, bytes, bytes]
) -> None:
    stem, hea, _ = wfdb_pair
    r = httpx.post(live_server + "/v1/predict", files=[("files", (f"{stem}.hea", hea))], timeout=30)
    message = answer(r).error()["message"]
    assert "ecgcnn-upload-" not in message and tempfile.gettempdir() not in message, message


# --- g. the body timeout -------------------------------------------------------------------------


def test_body_timeout_answers_408_and_the_server_keeps_serving(
    served_checkpoint: Path, tmp_path: Path
) -> None:
    log = tmp_path / "serve.log"
    proc, url = start_server(served_checkpoint, log, "--body-timeout", "1")
    try:

        async def stall() -> tuple[Answer, float]:
            """10 of 100 declared bytes, then nothing."""
            start = time.perf_counter()
            reader, writer = await asyncio.open_connection(*address(url))
            try:
                writer.write(
                    request_head(url, "Content-Type: application/json", "Content-Length: 100")
                    + b'{"signal":'
                )
                await writer.drain()
                return await read_answer(reader, timeout_s=10), time.perf_counter() - start
            finally:
                writer.close()

        async def trickling() -> tuple[Answer | None, float]:
            """A body that keeps coming: the limit is on the whole body. When the client writes a
            piece after the server has answered and closed, TCP resets the connection and may drop
            the 408 before it is read: a reset after the timeout is that outcome, not a failure."""
            start = time.perf_counter()
            try:
                return await trickle(url, b'{"signal": [[0.0, 0.0]], "fs": 100}', 2, 0.2)
            except ConnectionResetError:
                return None, time.perf_counter() - start

        async def main() -> list[tuple[Answer | None, float]]:
            return await asyncio.gather(stall(), trickling())

        (stalled, stalled_s), (trickled, trickled_s) = asyncio.run(main())
        error = stalled.error()
        assert (stalled.status, error["code"], error["field"]) == (408, "body_timeout", "body")
        assert 0.9 <= stalled_s < 5.0
        assert 0.9 <= trickled_s < 5.0
        if trickled is not None:
            error = trickled.error()
            assert (trickled.status, error["code"]) == (408, "body_timeout")
        example = httpx.get(url + "/v1/examples/normal", timeout=30).content
        r = httpx.post(url + "/v1/predict", content=example, headers=JSON, timeout=30)
        assert r.status_code == 200
    finally:
        stop_server(proc)
    assert "Traceback" not in log.read_text(errors="replace")


# --- last: whatever happened above, the shared server logged no traceback ----------------------


def test_live_server_logged_no_traceback(
    live_server: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    base = tmp_path_factory.getbasetemp()
    logs = [p for p in sorted(base.glob("server*/serve.log")) if not p.parent.is_symlink()]
    assert logs, "the live_server log was not found"
    for log in logs:
        text = log.read_text(errors="replace")
        assert "Traceback" not in text, text[-3000:]
