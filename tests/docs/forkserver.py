"""A fork server for the docs examples: `relove` and `python` as the examples call them, without
paying ~1 s of imports (the CLI, SQLAlchemy, FastAPI, aiogram) for every one of ~100 commands
on a loaded machine.

The server imports ``relove.cli`` (and through it most of the product) once and listens on a
Unix socket. The ``relove`` and ``python`` on the examples' PATH are small clients (written by
:func:`write_clients`) that send their argv, environment, working directory and their
stdin/stdout/stderr file descriptors; the server forks, the child takes them over and runs
``relove.cli.main(argv)`` exactly as the console script does — or, for ``python FILE …`` and
``python -m MODULE …``, runs the file or module as ``__main__`` — and the client exits with the
child's exit code. Any other ``python`` invocation runs the real interpreter.
``DOCS_EXAMPLES_PLAIN=1`` skips all this (tests/docs/test_examples.py): the real console script
and interpreter, which is what this must agree with.

Run as ``python tests/docs/forkserver.py SOCKET``.
"""

from __future__ import annotations

import json
import os
import runpy
import socket
import sys
import traceback
from pathlib import Path

CLIENT = """\
#!{python} -IS
import json, os, socket, sys
mode = {mode!r}
args = sys.argv[1:]
if mode == "python" and not (args[:1] == ["-m"] and len(args) > 1
                             or args and not args[0].startswith("-")):
    os.execv({python!r}, [{python!r}, *args])  # not a plain `python FILE` / `python -m MODULE`
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect({socket_path!r})
msg = json.dumps({{"mode": mode, "argv": args, "env": dict(os.environ),
                  "cwd": os.getcwd()}}).encode()
socket.send_fds(s, [len(msg).to_bytes(8, "big") + msg], [0, 1, 2])
code = b""
while len(code) < 4:
    chunk = s.recv(4 - len(code))
    if not chunk:
        sys.exit(125)
    code += chunk
sys.exit(int.from_bytes(code, "big", signed=True))
"""


def write_clients(directory: Path, socket_path: Path) -> None:
    """``relove`` and ``python`` clients of the server listening on ``socket_path``."""
    for mode in ("relove", "python"):
        path = directory / mode
        path.write_text(CLIENT.format(python=sys.executable, socket_path=str(socket_path),
                                      mode=mode))
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


def _run_python(argv: list[str]) -> int:
    """``python FILE args…`` or ``python -m MODULE args…``, as ``__main__``."""
    try:
        if argv[0] == "-m":
            sys.argv = [argv[1], *argv[2:]]
            sys.path.insert(0, os.getcwd())
            runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
        else:
            sys.argv = list(argv)
            sys.path.insert(0, str(Path(argv[0]).resolve().parent))
            runpy.run_path(argv[0], run_name="__main__")
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:  # noqa: BLE001 - as the interpreter: a traceback and exit 1
        traceback.print_exc()
        return 1
    return 0


def _run_child(request: dict[str, object], fds: list[int]) -> None:
    from relove.cli import main

    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(str(request["cwd"]))
    os.environ.clear()
    os.environ.update(request["env"])  # type: ignore[arg-type]
    argv = [str(a) for a in request["argv"]]  # type: ignore[attr-defined]
    code = 1
    try:
        if request["mode"] == "python":
            code = _run_python(argv)
        else:
            sys.argv = ["relove", *argv]
            code = main(argv)
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):  # closed by the program (json.tool does)
                pass
        os._exit(code)  # never back into the server's loop


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
    if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
        sys.path.pop(0)  # this script's directory: not on an example's path
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
