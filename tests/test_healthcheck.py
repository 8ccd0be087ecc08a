"""The image's HEALTHCHECK finds `ecgcnn serve` and its port from the command line."""

from __future__ import annotations

import pytest

from ecgcnn.healthcheck import DEFAULT_PORT, check, serve_address

CLI = "/opt/venv/bin/ecgcnn"


@pytest.mark.parametrize(
    ("argv", "address"),
    [
        (["python", CLI, "serve", "--host", "0.0.0.0", "--port", "9000"], ("127.0.0.1", 9000)),
        (["python", CLI, "serve", "--port=9001", "--host=::"], ("::1", 9001)),
        (["python", CLI, "serve", "--checkpoint", "/m/x.pt"], ("127.0.0.1", DEFAULT_PORT)),
        (["python", "-m", "ecgcnn", "serve", "--host", "10.0.0.5"], ("10.0.0.5", DEFAULT_PORT)),
        (["python", CLI, "-v", "serve", "--port", "9002"], ("127.0.0.1", 9002)),  # global option
        (["python", "-m", "ecgcnn", "--verbose", "serve"], ("127.0.0.1", DEFAULT_PORT)),
        (["python", CLI, "-v", "train", "--port", "9000"], None),
        (["python", CLI, "train", "--port", "9000"], None),  # another command serves nothing
        (["python", CLI], None),
        (["sleep", "5"], None),
    ],
)
def test_the_serving_address_comes_from_the_command_line(argv, address) -> None:
    assert serve_address(argv) == address


@pytest.mark.slow
def test_healthy_when_each_server_answers_and_when_none_runs(live_server: str) -> None:
    port = live_server.rsplit(":", 1)[1]
    assert check([["python", CLI, "serve", "--port", port]]) == 0
    assert check([["python", CLI, "train", "--data-root", "x"]]) == 0  # nothing served here
    from conftest import free_port

    dead = str(free_port())
    assert check([["python", CLI, "serve", "--port", port], [CLI, "serve", "--port", dead]]) == 1
