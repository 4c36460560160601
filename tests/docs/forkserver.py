"""A fork server for the docs examples: `relove` as the examples call it, without paying the
CLI's ~1 s of imports for every one of ~100 commands on a loaded machine.

The server imports ``relove.cli`` once and listens on a Unix socket. The ``relove`` on the
examples' PATH is a small client (written by :func:`write_client`) that sends its argv,
environment, working directory and its stdin/stdout/stderr file descriptors; the server forks,
the child takes them over and runs ``relove.cli.main(argv)`` exactly as the console script does,
and the client exits with the child's exit code. ``DOCS_EXAMPLES_PLAIN=1`` runs the real console
script instead (tests/docs/test_examples.py), which is what this must agree with.

Run as ``python tests/docs/forkserver.py SOCKET``.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

CLIENT = """\
#!{python} -IS
import json, os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect({socket_path!r})
msg = json.dumps({{"argv": sys.argv[1:], "env": dict(os.environ), "cwd": os.getcwd()}}).encode()
socket.send_fds(s, [len(msg).to_bytes(8, "big") + msg], [0, 1, 2])
code = b""
while len(code) < 4:
    chunk = s.recv(4 - len(code))
    if not chunk:
        sys.exit(125)
    code += chunk
sys.exit(int.from_bytes(code, "big", signed=True))
"""


def write_client(path: Path, socket_path: Path) -> None:
    path.write_text(CLIENT.format(python=sys.executable, socket_path=str(socket_path)))
    path.chmod(0o755)


def _recv_request(conn: socket.socket) -> tuple[dict[str, object], list[int]]:
    data, fds, _flags, _addr = socket.recv_fds(conn, 1 << 20, 3)
    size = int.from_bytes(data[:8], "big")
    body = data[8:]
    while len(body) < size:
        chunk = conn.recv(size - len(body))
        if not chunk:
            raise ConnectionError("client went away")
        body += chunk
    return json.loads(body), fds


def _run_child(request: dict[str, object], fds: list[int]) -> None:
    from relove.cli import main

    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(str(request["cwd"]))
    os.environ.clear()
    os.environ.update(request["env"])  # type: ignore[arg-type]
    argv = [str(a) for a in request["argv"]]  # type: ignore[attr-defined]
    sys.argv = ["relove", *argv]
    code = 1
    try:
        code = main(argv)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _serve_one(conn: socket.socket) -> None:
    with conn:
        request, fds = _recv_request(conn)
        pid = os.fork()
        if pid == 0:
            conn.close()
            _run_child(request, fds)
        for fd in fds:
            os.close(fd)
        _pid, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        conn.sendall(code.to_bytes(4, "big", signed=True))


def serve(socket_path: str) -> None:
    import relove.cli  # noqa: F401 - the point: import once, fork many times

    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(socket_path)
    server.listen(16)
    sys.stdout.write("ready\n")  # the test waits for this line
    sys.stdout.flush()
    while True:
        conn, _ = server.accept()  # one at a time: an example runs its commands in turn
        _serve_one(conn)


if __name__ == "__main__":
    serve(sys.argv[1])
