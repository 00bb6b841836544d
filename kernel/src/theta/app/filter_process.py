"""git's long-running filter process (`filter.theta.process`): one per git command.

This module speaks pkt-line and nothing else: each blob goes to `Session.clean` or
`Session.smudge`. stdout is the protocol channel and nothing else may write to it: the
packet writer owns a duplicate of file descriptor 1, and descriptor 1 itself is pointed at
stderr. One failing file answers `status=error` for that file only; a summary is printed
once at the end.
"""

from __future__ import annotations

import fcntl
import os
import resource
import stat
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, BinaryIO, NoReturn

from theta.app import smudge_policy
from theta.app.hooks import ensure_repo_hooks
from theta.errors import ThetaError
from theta.git.pktline import ContentStream, ContentWriter, PacketReader, PacketWriter, ProtocolError

if TYPE_CHECKING:
    from theta.session import Session

CAPABILITIES = ("capability=clean", "capability=smudge")


class Response:
    """The answer to one blob: `status=success` goes out with the first byte of content."""

    def __init__(self, writer: PacketWriter) -> None:
        self._writer = writer
        self._content: ContentWriter | None = None

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self._content is None:
            self._writer.text_list("status=success")
            self._content = self._writer.content()
        return self._content.write(data)

    def succeed(self) -> None:
        if self._content is None:
            self.write(b"")
        assert self._content is not None
        self._content.finish()
        self._writer.flush()
        self._writer.flush()  # an empty list: the status stays success

    def fail(self) -> None:
        if self._content is not None:
            self._content.finish()
            self._writer.flush()
        self._writer.text_list("status=error")


class FilterProcess:
    def __init__(
        self, stdin: BinaryIO, stdout: BinaryIO, new_session: Callable[[], Session], skip_smudge: bool = False
    ) -> None:
        self.reader = PacketReader(stdin)
        self.writer = PacketWriter(stdout)
        self._new_session = new_session
        self._session: Session | None = None
        self.failures: list[str] = []
        self.trace = os.environ.get("THETA_TRACE", "") not in ("", "0")
        self._hooks_checked = False
        self.leave_metadata = smudge_policy.reason(skip_smudge)

    @property
    def session(self) -> Session:
        """Made at the first file that needs it: a git command that only shows diffs never does,
        and its filter then starts without loading the plugins."""
        if self._session is None:
            self._session = self._new_session()
        return self._session

    def close(self) -> None:
        if self._session is not None:
            self._session.close()

    def serve(self) -> int:
        try:
            self._handshake()
        except EOFError as exc:
            raise ProtocolError(
                f"{exc} before the handshake ended: git runs this command (filter.theta.process);"
                " it is not meant to be run by hand"
            ) from None
        while True:
            try:
                keys = self.reader.read_keys()
            except EOFError:
                break
            command, path = keys.get("command", ""), keys.get("pathname", "")
            content = self.reader.content()
            started = time.monotonic()
            if command == "clean":
                self._clean(path, content)
            elif command == "smudge":
                self._smudge(path, content)
            else:
                content.drain()
                self.writer.text_list("status=error")
            if self.trace:
                print(f"theta: trace: {command} {path} took {time.monotonic() - started:.2f}s", file=sys.stderr)
        self._summary()
        return 0

    def _handshake(self) -> None:
        welcome = self.reader.read_text_list()
        if welcome[:1] != ["git-filter-client"] or "version=2" not in welcome:
            raise ProtocolError(f"unexpected greeting {welcome!r}")
        self.writer.text_list("git-filter-server", "version=2")
        offered = self.reader.read_text_list()
        self.writer.text_list(*[c for c in CAPABILITIES if c in offered])

    def _fail(self, path: str, exc: BaseException) -> None:
        message = str(exc) if isinstance(exc, ThetaError) else f"{path}: internal error: {type(exc).__name__}: {exc}"
        if not message.startswith(path):
            message = f"{path}: {message}"
        print(f"theta: error: {message}", file=sys.stderr)
        self.failures.append(message)

    def _check_hooks(self) -> None:
        if not self._hooks_checked:
            self._hooks_checked = True
            try:
                ensure_repo_hooks(self.session.repo)
            except (OSError, ThetaError) as exc:
                print(f"theta: warning: could not install the repository's hooks: {exc}", file=sys.stderr)

    def _clean(self, path: str, content: ContentStream) -> None:
        self._check_hooks()
        try:
            result = self.session.clean(path, content)
        except Exception as exc:
            content.drain()
            self._fail(path, exc)
            self.writer.text_list("status=error")
            return
        content.drain()
        response = Response(self.writer)
        response.write(result)
        response.succeed()

    def _smudge(self, path: str, content: ContentStream) -> None:
        data = content.readall()
        response = Response(self.writer)
        if self.leave_metadata is not None:  # a lazy checkout, or git only shows a diff
            response.write(data)
            response.succeed()
            if self.trace:
                print(f"theta: trace: smudge {path} left as metadata: {self.leave_metadata}", file=sys.stderr)
            return
        self._check_hooks()
        try:
            problem = self.session.smudge(path, data, response)  # type: ignore[arg-type]
        except Exception as exc:
            response.fail()
            self._fail(path, exc)
            return
        response.succeed()
        if problem is not None:
            self._fail(path, ThetaError(problem))

    def _summary(self) -> None:
        if self.failures:
            print(f"theta: {len(self.failures)} file(s) failed:", file=sys.stderr)
            for message in self.failures:
                print(f"theta:   {message}", file=sys.stderr)
        if self.trace:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
            print(f"theta: trace: filter-process peak RSS {peak} MiB", file=sys.stderr)


# git and the filter trade 64 KiB packets: through a pipe of git's default 64 KiB each packet
# waits for the other side to wake up (a 1 GiB checkpoint is 16,000 round trips). Pipes this
# large let both sides run on (Linux lets any process ask for up to /proc/sys/fs/pipe-max-size).
PIPE_BYTES = 1 << 20


def widen_pipe(fd: int, size: int = PIPE_BYTES) -> None:
    """Ask for a pipe buffer of `size` bytes on `fd`, when it is a pipe and the system allows it."""
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None)
    if set_size is None:
        return
    try:
        if stat.S_ISFIFO(os.fstat(fd).st_mode):
            fcntl.fcntl(fd, set_size, size)
    except OSError:
        pass  # above the system's limit, or not a pipe after all: git's default works too


def main(skip_smudge: bool = False) -> NoReturn:
    for fd in (0, 1):
        widen_pipe(fd)
    protocol_out = os.fdopen(os.dup(1), "wb", buffering=1 << 16)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    protocol_in = os.fdopen(os.dup(0), "rb", buffering=1 << 20)
    process = FilterProcess(protocol_in, protocol_out, _new_session, skip_smudge)
    try:
        code = process.serve()
    except (ProtocolError, BrokenPipeError, EOFError) as exc:
        print(f"theta: filter-process: {exc}", file=sys.stderr)
        code = 1
    finally:
        process.close()
    leave_now(code, protocol_out)


def leave_now(code: int, protocol_out: BinaryIO) -> NoReturn:
    """End the process without tearing the interpreter down.

    git waits for its filter to exit before it exits itself, and the orderly teardown of numpy,
    the plugins and every module costs about 50 ms, a fifth of the whole checkout of a small
    file. Everything the filter writes is on disk by now (each file is renamed into place
    when it is complete), so only the streams need flushing.
    """
    for stream in (protocol_out, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            if stream is not None and not stream.closed:
                stream.flush()
        except (OSError, ValueError):
            pass  # git has gone: there is no one left to tell
    os._exit(code)


def _new_session() -> Session:
    from theta.session import Session

    return Session()
