"""git's long-running filter process (`filter.theta.process`): one per git command.

stdout is the protocol channel and nothing else may write to it: the packet writer owns a
duplicate of file descriptor 1, and descriptor 1 itself is pointed at stderr. One failing
file answers `status=error` for that file only; a summary is printed once at the end.
"""

from __future__ import annotations

import io
import os
import resource
import sys
import time
from typing import BinaryIO

from theta.app.hooks import ensure_repo_hooks
from theta.checkpoints import choose_format
from theta.errors import ThetaError
from theta.formats import SNIFF_BYTES, Source
from theta.git.pktline import ContentStream, PacketReader, PacketWriter, ProtocolError
from theta.metadata import dumps, loads, looks_like_metadata
from theta.session import Session

CAPABILITIES = ("capability=clean", "capability=smudge")


class FilterProcess:
    def __init__(self, stdin: BinaryIO, stdout: BinaryIO, session: Session) -> None:
        self.reader = PacketReader(stdin)
        self.writer = PacketWriter(stdout)
        self.session = session
        self.failures: list[str] = []
        self.trace = os.environ.get("THETA_TRACE", "") not in ("", "0")
        self._hooks_checked = False

    def serve(self) -> int:
        self._handshake()
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
        source: Source | None = None
        try:
            buffered = io.BufferedReader(content, buffer_size=1 << 20)  # type: ignore[arg-type]
            head = buffered.peek(SNIFF_BYTES)[:SNIFF_BYTES]
            buffered.read(len(head))
            if not head or looks_like_metadata(head):
                result = head + buffered.read()
                if head:
                    loads(result, path)  # a malformed metadata file is an error, not a checkpoint
            else:
                self._check_hooks()
                session = self.session
                fmt = choose_format(session.registry, path, head, session.format_override(path))
                source = Source(path, buffered, head, spool_dir=session.spool_dir)
                metadata = session.cleaner.clean(
                    source, fmt, session.previous_versions(path), session.clean_settings(path)
                )
                result = dumps(metadata)
            content.drain()
        except Exception as exc:
            content.drain()
            self._fail(path, exc)
            self.writer.text_list("status=error")
            return
        finally:
            if source is not None:
                source.close()
        self._respond(result)

    def _respond(self, result: bytes) -> None:
        self.writer.text_list("status=success")
        out = self.writer.content()
        out.write(result)
        out.finish()
        self.writer.flush()
        self.writer.flush()  # an empty list: the status stays success

    def _smudge(self, path: str, content: ContentStream) -> None:
        data = content.readall()
        if not looks_like_metadata(data[:256]):
            self._respond(data)  # not ours (e.g. committed before tracking): leave it as it is
            return
        self._check_hooks()
        try:
            metadata = loads(data, path)
            if metadata.format not in self.session.registry.formats:
                self._leave_metadata(path, data, metadata.format, metadata.format_plugin)
                return
            self.session.smudger.ensure_objects(metadata, path)
        except Exception as exc:
            self._fail(path, exc)
            self.writer.text_list("status=error")
            return
        self.writer.text_list("status=success")
        out = self.writer.content()
        try:
            self.session.smudger.smudge(metadata, path, out)  # type: ignore[arg-type]
        except Exception as exc:
            out.finish()
            self.writer.flush()
            self._fail(path, exc)
            self.writer.text_list("status=error")
            return
        out.finish()
        self.writer.flush()
        self.writer.flush()
        self.session.remember_checkout(path, data)

    def _leave_metadata(self, path: str, data: bytes, format_name: str, distribution: str | None) -> None:
        """Without the format's plugin, the file is left as its metadata, as git-lfs leaves pointers."""
        try:
            self.session.registry.format(format_name, distribution)
        except ThetaError as exc:
            self._fail(
                path, ThetaError(f"{exc}; then run `git theta checkout` (the metadata file was written instead)")
            )
        self._respond(data)

    def _summary(self) -> None:
        if self.failures:
            print(f"theta: {len(self.failures)} file(s) failed:", file=sys.stderr)
            for message in self.failures:
                print(f"theta:   {message}", file=sys.stderr)
        if self.trace:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
            print(f"theta: trace: filter-process peak RSS {peak} MiB", file=sys.stderr)


def main() -> int:
    protocol_out = os.fdopen(os.dup(1), "wb", buffering=1 << 16)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    protocol_in = os.fdopen(os.dup(0), "rb", buffering=1 << 20)
    session = Session()
    try:
        return FilterProcess(protocol_in, protocol_out, session).serve()
    except (ProtocolError, BrokenPipeError) as exc:
        print(f"theta: filter-process: {exc}", file=sys.stderr)
        return 1
    finally:
        session.close()
