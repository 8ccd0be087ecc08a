"""The service's request-body limits, on the ASGI middleware itself (no model, no server)."""

from __future__ import annotations

import json

import anyio
import pytest

from ecgcnn.errors import EcgcnnError
from ecgcnn.serve import BodyLimit, Settings, create_app


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
    """A burst of large bodies must not all be worked on (parsed) at once: past the in-flight
    budget a body waits for the ones before it, first come first served, so a large one is not
    passed over by smaller ones that would fit."""

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
            assert gate.bodies == [b"a" * 1000]  # the small one would fit, but waits its turn
            gate.open.set()
        assert gate.bodies == [b"a" * 1000, b"b" * 1000, b"c" * 400]
        assert [r[3]["status"] for r in (first, second, small)] == [200, 200, 200]
        assert limit.inflight == 0

    anyio.run(main)


def test_connections_that_send_no_body_hold_none_of_the_budget() -> None:
    """Headers promising the largest body, then nothing: only a 408 for them, in their own time;
    the others are answered meanwhile."""

    async def main() -> None:
        gate = Gate()
        gate.open.set()
        limit = BodyLimit(gate, max_bytes=1000, timeout_s=0.5, max_inflight_bytes=1000)
        idle = [request(b"") for _ in range(4)]

        async def silent():
            await anyio.sleep_forever()

        async with anyio.create_task_group() as tg:
            for scope, _, send, _ in idle:
                scope["headers"] = [(b"content-length", b"1000")]
                tg.start_soon(limit, scope, silent, send)
            await anyio.sleep(0.05)
            good = request(b"d" * 500)
            with anyio.fail_after(0.3):
                await limit(*good[:3])
        assert good[3]["status"] == 200
        assert [r[3]["status"] for r in idle] == [408] * 4

    anyio.run(main)


def test_a_request_that_waits_too_long_for_its_turn_gets_503_busy() -> None:
    async def main() -> None:
        gate = Gate()
        limit = BodyLimit(gate, max_bytes=1000, timeout_s=0.2, max_inflight_bytes=1000)
        first, second = request(b"a" * 1000), request(b"b" * 10, declared=False)
        async with anyio.create_task_group() as tg:
            tg.start_soon(limit, *first[:3])
            await anyio.sleep(0.05)
            await limit(*second[:3])  # no Content-Length: counted by what arrives
            gate.open.set()
        answer = second[3]
        assert answer["status"] == 503 and answer["headers"][b"retry-after"] == b"1"
        error = json.loads(answer["body"])["error"]
        assert error["code"] == "busy" and "1,000 bytes" in error["message"]
        assert gate.bodies == [b"a" * 1000] and first[3]["status"] == 200
        assert limit.inflight == 0 and not limit._queue

    anyio.run(main)


def test_the_budget_must_hold_the_largest_body() -> None:
    with pytest.raises(EcgcnnError, match="in-flight"):
        BodyLimit(Gate(), max_bytes=1000, timeout_s=1, max_inflight_bytes=999)
    with pytest.raises(EcgcnnError, match="in-flight"):  # when the app is made, not on a request
        create_app(Settings("x.pt", max_body_bytes=1000, max_inflight_bytes=999))


def test_a_busy_reply_comes_after_the_body_so_the_client_sees_it() -> None:
    """A client still sending gets the 503, not a connection reset."""

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


def test_a_request_cancelled_while_waiting_leaves_nothing_counted() -> None:
    async def main() -> None:
        gate = Gate()
        limit = BodyLimit(gate, max_bytes=1000, timeout_s=5, max_inflight_bytes=1000)
        first, second = request(b"a" * 1000), request(b"b" * 1000)
        async with anyio.create_task_group() as tg:
            tg.start_soon(limit, *first[:3])
            await anyio.sleep(0.05)
            async with anyio.create_task_group() as waiting:
                waiting.start_soon(limit, *second[:3])
                await anyio.sleep(0.05)
                assert len(limit._queue) == 1
                waiting.cancel_scope.cancel()
            assert not limit._queue
            gate.open.set()
        assert limit.inflight == 0 and gate.bodies == [b"a" * 1000]

    anyio.run(main)
