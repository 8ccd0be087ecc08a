"""The container image's HEALTHCHECK (``python -m ecgcnn.healthcheck``): asks ``/healthz`` of each
``ecgcnn serve`` running in the container, on the address and port it was started with; a
container running another command (``train``, ``download``) serves nothing and is healthy."""

from __future__ import annotations

import sys
import urllib.request
from collections.abc import Iterable, Sequence
from pathlib import Path

DEFAULT_PORT = 8000  # ecgcnn serve's --port default and the image's EXPOSE
ANY_ADDRESS = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}


def serve_address(argv: Sequence[str]) -> tuple[str, int] | None:
    """Where the process with this command line serves, if it is ``ecgcnn serve``."""
    args = list(argv)
    start = next((i + 1 for i, a in enumerate(args) if Path(a).name == "ecgcnn"), None)
    while start is not None and start < len(args) and args[start].startswith("-"):
        start += 1  # global options before the command (-v, --verbose)
    if start is None or start >= len(args) or args[start] != "serve":
        return None
    host, port = "127.0.0.1", DEFAULT_PORT
    rest = args[start + 1 :]
    for i, arg in enumerate(rest):
        name, _, value = arg.partition("=")
        if name in ("--host", "--port") and not value and i + 1 < len(rest):
            value = rest[i + 1]
        if name == "--host" and value:
            host = value
        elif name == "--port" and value.isdigit():
            port = int(value)
    return ANY_ADDRESS.get(host, host), port


def running_commands() -> Iterable[list[str]]:
    """The command lines of this container's processes (Linux /proc)."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            raw = cmdline.read_bytes()
        except OSError:  # gone, or another user's
            continue
        if raw:
            yield [a.decode(errors="replace") for a in raw.rstrip(b"\0").split(b"\0")]


def check(commands: Iterable[Sequence[str]], timeout_s: float = 4.0) -> int:
    """0 if every ``ecgcnn serve`` among ``commands`` answers /healthz with 200, else 1."""
    status = 0
    for address in {a for c in commands if (a := serve_address(c))}:
        host, port = address
        url = f"http://{f'[{host}]' if ':' in host else host}:{port}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as r:
                ok = r.status == 200
        except OSError as exc:  # refused, timed out, or an HTTP error such as 503
            print(f"{url}: {exc}", file=sys.stderr)
            ok = False
        status |= not ok
    return status


if __name__ == "__main__":
    sys.exit(check(running_commands()))
