"""The service's request-body limits, on the ASGI middleware itself (no model, no server)."""

from __future__ import annotations

import json

import anyio
import pytest

from ecgcnn.serve import BodyLimit


class Gate:
    """An app that records the bodies it receives and answers once ``open`` is set."""

    def __init__(self) -> None:
        self.open = anyio.Event()
        self.bodies: list[bytes] = []

    async def __call__(self, scope, receive, send) -> None:
        self.bodies.append((await receive())["body"])
        await self.open.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def request(body: bytes, declared: bool = True):
    scope = {"type": "http", "method": "POST", "path": "/v1/predict",
             "headers": [(b"content-length", str(len(body)).encode())] if declared else []}  # fmt: skip
    sent = False

    async def receive():
        nonlocal sent
        if sent:
            await anyio.sleep_forever()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    answer: dict = {}

    async def send(message) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
            answer["headers"] = dict(message["headers"])
        else:
            answer["body"] = message["body"]

    return scope, receive, send, answer


def test_bodies_in_flight_are_bounded_in_bytes_and_wait_their_turn() -> None:
    """A burst of large bodies must not all be held (and parsed) at once: past the in-flight
    budget a request waits, unread, for the ones before it; small ones still pass."""

    async def main() -> None:
        gate = Gate()
        limit = BodyLimit(gate, max_bytes=1000, timeout_s=5, max_inflight_bytes=1500)
        first, second, small = request(b"a" * 1000), request(b"b" * 1000), request(b"c" * 400)
        async with anyio.create_task_group() as tg:
            tg.start_soon(limit, *first[:3])
            await anyio.sleep(0.05)
            tg.start_soon(limit, *second[:3])
            await anyio.sleep(0.05)
            tg.start_soon(limit, *small[:3])
            await anyio.sleep(0.1)
            assert gate.bodies == [b"a" * 1000, b"c" * 400]  # the second large one waits, unread
            gate.open.set()
        assert gate.bodies[-1] == b"b" * 1000
        assert [r[3]["status"] for r in (first, second, small)] == [200, 200, 200]

    anyio.run(main)


def test_a_request_that_waits_too_long_for_its_turn_gets_503_busy() -> None:
    async def main() -> None:
        gate = Gate()
        limit = BodyLimit(gate, max_bytes=1000, timeout_s=0.2, max_inflight_bytes=1000)
        first, second = request(b"a" * 1000), request(b"b" * 10, declared=False)
        async with anyio.create_task_group() as tg:
            tg.start_soon(limit, *first[:3])
            await anyio.sleep(0.05)
            await limit(*second[:3])  # no Content-Length: counted at the most a body may be
            gate.open.set()
        answer = second[3]
        assert answer["status"] == 503 and answer["headers"][b"retry-after"] == b"1"
        error = json.loads(answer["body"])["error"]
        assert error["code"] == "busy" and "1,000 bytes" in error["message"]
        assert gate.bodies == [b"a" * 1000] and first[3]["status"] == 200

    anyio.run(main)


def test_the_budget_must_hold_the_largest_body() -> None:
    with pytest.raises(ValueError, match="in-flight"):
        BodyLimit(Gate(), max_bytes=1000, timeout_s=1, max_inflight_bytes=999)


def test_a_busy_reply_reads_the_waiting_body_first_so_the_client_sees_it() -> None:
    """As with 413: a client still sending gets the 503, not a connection reset; what is read is
    dropped, not held."""

    async def main() -> None:
        gate = Gate()
        limit = BodyLimit(gate, max_bytes=1000, timeout_s=0.2, max_inflight_bytes=1000)
        first = request(b"a" * 1000)
        pieces = [b"b" * 300, b"b" * 300, b"b" * 300]
        got = []

        async def receive():
            if pieces:
                got.append(pieces.pop(0))
                return {"type": "http.request", "body": got[-1], "more_body": bool(pieces)}
            await anyio.sleep_forever()

        second = request(b"")
        async with anyio.create_task_group() as tg:
            tg.start_soon(limit, *first[:3])
            await anyio.sleep(0.05)
            await limit(second[0] | {"headers": [(b"content-length", b"900")]}, receive, second[2])
            gate.open.set()
        assert second[3]["status"] == 503 and len(got) == 3  # the whole body was read, then dropped

    anyio.run(main)
