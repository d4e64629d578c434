"""What the local launchers share: ports, a working directory, one child process.

:class:`LocalService` is the base of the local Kafka broker, the throwaway PostgreSQL and
:class:`HookbusProcess` (one ``hookbus`` command, as an operator runs it: what the fault
tests kill and restart). A :class:`LocalService` owns exactly the process it started. It signals that PID (or, for a
server that forks workers, the process group that PID leads) and nothing else, so several
brokers can run side by side on one machine. The child is asked to die with its parent:
a test run that is killed does not leave a JVM behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Protocol, Self

from tools.errors import LocalServiceError

LOOPBACK = "127.0.0.1"
_PR_SET_PDEATHSIG = 1
_LOG_TAIL_LINES = 30
_ERROR_LINES = 5
_ERROR_LINE = re.compile(r"\b(ERROR|FATAL|PANIC)\b|Exception:")
_POLL_SECONDS = 0.1


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port nothing listens on right now (the kernel's pick for port 0)."""
    return free_ports(1, host)[0]


def free_ports(count: int, host: str = LOOPBACK) -> tuple[int, ...]:
    """``count`` distinct free ports: all sockets stay bound until every port is picked."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((host, 0))
            ports.append(int(sock.getsockname()[1]))
        return tuple(ports)


@dataclass(frozen=True, slots=True)
class RunAs:
    """A system account a child process runs as (PostgreSQL refuses to run as root)."""

    name: str
    uid: int
    gid: int

    @classmethod
    def account(cls, name: str) -> RunAs:
        try:
            entry = pwd.getpwnam(name)
        except KeyError as exc:
            raise LocalServiceError(f"running as root needs the system user {name!r}, which does not exist") from exc
        return cls(name=name, uid=entry.pw_uid, gid=entry.pw_gid)

    def own(self, path: Path) -> None:
        """Give ``path`` and everything below it to this account."""
        for directory, _, files in os.walk(path):
            os.chown(directory, self.uid, self.gid)
            for name in files:
                os.chown(os.path.join(directory, name), self.uid, self.gid)


def _die_with_parent() -> None:
    # Runs in the child between fork and exec, after any change of user (which would clear it).
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def log_excerpt(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    """What a failed start has to say: the log's first error lines, then its last ``lines`` lines."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return f"(no log at {path})"
    all_lines = text.splitlines()
    errors = [line for line in all_lines if _ERROR_LINE.search(line)][:_ERROR_LINES]
    tail = all_lines[-lines:]
    excerpt = [*(line for line in errors if line not in tail), *tail]
    return "\n".join(excerpt) or f"({path} is empty)"


def run_tool(argv: Sequence[str], *, what: str, log_path: Path, run_as: RunAs | None = None) -> None:
    """Run a setup tool to completion (initdb, Kafka's storage format); its output goes to ``log_path``."""
    with log_path.open("ab") as log:
        try:
            result = subprocess.run(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                check=False,
                user=run_as.uid if run_as else None,
                group=run_as.gid if run_as else None,
                extra_groups=[] if run_as else None,
            )
        except OSError as exc:
            raise LocalServiceError(f"{what}: cannot run {argv[0]}: {exc}") from exc
    if result.returncode != 0:
        raise LocalServiceError(f"{what} failed with exit code {result.returncode}:\n{log_excerpt(log_path)}")


class LocalService(ABC):
    """A server run as one child process in a working directory of its own.

    ``start`` prepares the directory once (ports, configuration, data) and launches the server;
    ``kill`` and ``restart`` keep the directory and ports, so a restarted server comes back with
    its data at the same address; ``stop`` ends the server and removes the directory it made
    (a ``workdir`` given by the caller is kept, and reused by the next ``start``).

    The server dies with the *thread* that launched it (Linux's parent-death signal): call
    ``start`` and ``restart`` from a thread that lives as long as the server should, such as
    the main thread, not from a short-lived worker thread.
    """

    #: Name used in messages and in the working directory's prefix.
    name: str = "service"
    #: The signal asking the server to shut down cleanly.
    stop_signal: signal.Signals = signal.SIGTERM
    #: Whether the server forks workers that must be signalled with it (its process group).
    signal_group: bool = False

    def __init__(self, *, workdir: str | os.PathLike[str] | None = None, ready_timeout: float = 60.0) -> None:
        # Absolute: the service runs with its working directory as cwd, where a relative path would not resolve.
        self._given_workdir = Path(workdir).absolute() if workdir is not None else None
        self._workdir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._exit_code: int | None = None
        self._log: IO[bytes] | None = None
        self._log_offset = 0
        self.ready_timeout = ready_timeout

    # --- what each service says ---------------------------------------------------------

    @abstractmethod
    def _prepare(self, workdir: Path) -> None:
        """Pick ports, write configuration, create the data: once, before the first launch."""

    @abstractmethod
    def _command(self) -> list[str]:
        """The server's command line."""

    @abstractmethod
    def _is_ready(self) -> bool:
        """Whether the server answers its clients yet. Must not raise when it does not."""

    def _run_as(self) -> RunAs | None:
        """The account the server runs as; ``None`` for the current one."""
        return None

    # --- lifecycle ----------------------------------------------------------------------

    @property
    def workdir(self) -> Path:
        if self._workdir is None:
            raise LocalServiceError(f"{self.name} has not been started")
        return self._workdir

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    @property
    def pid(self) -> int | None:
        """The server's PID while it runs, else ``None``."""
        if self._process is None or self._process.poll() is not None:
            return None
        return self._process.pid

    @property
    def running(self) -> bool:
        return self.pid is not None

    @property
    def exit_code(self) -> int | None:
        """How the last run ended (``-N`` for signal N); ``None`` while it runs or before it ran."""
        if self._process is not None:
            return self._process.poll()
        return self._exit_code

    def log_since_launch(self) -> str:
        """What the server wrote since it was last launched."""
        with self.log_path.open("rb") as log:
            log.seek(self._log_offset)
            return log.read().decode("utf-8", errors="replace")

    def where(self) -> str:
        """Its PID and log, for an operator."""
        return f"pid {self.pid}, log {self.log_path}"

    def send_signal(self, signum: signal.Signals) -> None:
        """Send ``signum`` to the server (its process group, for a server that forks), if it runs."""
        self._signal(signum)

    def start(self, *, wait: bool = True) -> None:
        """Prepare the working directory and start the server; return once it answers
        (at once with ``wait=False``, for servers that answer only together, as a Kafka quorum)."""
        if self._workdir is not None:
            raise LocalServiceError(f"{self.name} is already started; use restart()")
        if self._given_workdir is not None:
            self._given_workdir.mkdir(parents=True, exist_ok=True)
            workdir = self._given_workdir
        else:
            workdir = Path(tempfile.mkdtemp(prefix=f"hookbus-{self.name}-"))
        self._workdir = workdir
        try:
            self._prepare(workdir)
            self._launch(wait=wait)
        except BaseException:
            self.stop()
            raise

    def restart(self, timeout: float = 30.0, *, wait: bool = True) -> None:
        """Start the server again on the same ports and data (stopping it first if it runs)."""
        self._end_process(timeout)
        self._launch(wait=wait)

    def wait_ready(self) -> None:
        """Return once the server answers; raise if it exits or stays silent past ``ready_timeout``."""
        self._wait_ready()

    def kill(self) -> None:
        """End the server abruptly (SIGKILL), as a crash would; its data stays for ``restart``."""
        self._end_process(0.0)

    def end(self, timeout: float = 30.0) -> int | None:
        """End the server as ``stop`` does, keeping its directory and log; its exit code."""
        self._end_process(timeout)
        return self._exit_code

    def stop(self, timeout: float = 30.0) -> None:
        """Shut the server down (its stop signal, then SIGKILL after ``timeout``) and clean up."""
        self._end_process(timeout)
        if self._workdir is not None and self._given_workdir is None:
            shutil.rmtree(self._workdir, ignore_errors=True)
        self._workdir = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    # --- the child process --------------------------------------------------------------

    def _launch(self, *, wait: bool) -> None:
        self._log = self.log_path.open("ab")
        self._log_offset = self._log.tell()
        command = self._command()
        run_as = self._run_as()
        try:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - only a prctl call, no Python state
                user=run_as.uid if run_as else None,
                group=run_as.gid if run_as else None,
                extra_groups=[] if run_as else None,
            )
        except OSError as exc:
            raise LocalServiceError(f"cannot run {command[0]} for {self.name}: {exc}") from exc
        if wait:
            self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        process = self._process
        assert process is not None
        while True:
            code = process.poll()
            if code is not None:
                raise LocalServiceError(
                    f"{self.name} exited with code {code} while starting; log {self.log_path}:\n"
                    f"{log_excerpt(self.log_path)}"
                )
            if self._is_ready():
                return
            if time.monotonic() > deadline:
                self._end_process(0.0)
                raise LocalServiceError(
                    f"{self.name} did not answer within {self.ready_timeout:.0f} s; log {self.log_path}:\n"
                    f"{log_excerpt(self.log_path)}"
                )
            time.sleep(_POLL_SECONDS)

    def _signal(self, signum: signal.Signals) -> None:
        process = self._process
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            if self.signal_group:
                # The group was created for this PID (start_new_session): it holds only its workers.
                os.killpg(process.pid, signum)
            else:
                process.send_signal(signum)

    def _end_process(self, timeout: float) -> None:
        process = self._process
        if process is not None:
            if timeout > 0:
                self._signal(self.stop_signal)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout)
            self._signal(signal.SIGKILL)
            self._exit_code = process.wait()
            if self.signal_group:
                _wait_group_gone(process.pid)
        self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None


class HookbusProcess(LocalService):
    """One ``python -m hookbus <arguments>`` process, in a working directory shared with others.

    Its log is ``<workdir>/<name>.log``, appended to by every launch. It counts as started once
    launched: a caller that needs it serving waits for what it logs (:meth:`log_since_launch`).
    """

    def __init__(self, name: str, arguments: Sequence[str], *, workdir: Path, log_level: str = "info") -> None:
        super().__init__(workdir=workdir)
        self.name = name
        self.arguments = (sys.executable, "-m", "hookbus", "--log-level", log_level, *arguments)

    def _prepare(self, workdir: Path) -> None:
        """Nothing to prepare: the configuration is the caller's, named in the arguments."""

    def _command(self) -> list[str]:
        return list(self.arguments)

    def _is_ready(self) -> bool:
        return True


def _wait_group_gone(group: int, timeout: float = 10.0) -> None:
    # Workers still exiting keep ports and shared memory that a relaunch would trip over.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        time.sleep(_POLL_SECONDS)


class Served(Protocol):
    """What :func:`serve_until_signalled` runs: one service, or several run as one (a Kafka cluster)."""

    @property
    def name(self) -> str: ...

    @property
    def running(self) -> bool: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def where(self) -> str: ...


def serve_until_signalled(service: Served, announce: Callable[[], str]) -> int:
    """Start ``service``, print ``announce()`` and its PIDs, and run until SIGINT or SIGTERM.

    The ``python -m`` entries of the launchers; exit code 1 if the server dies on its own.
    """
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    try:
        service.start()
    except LocalServiceError as exc:
        print(exc, file=sys.stderr)
        return 1
    try:
        print(announce(), flush=True)
        print(f"# {service.where()}", flush=True)
        while not stopping.wait(1.0):
            if not service.running:
                print(f"{service.name} exited; {service.where()}", file=sys.stderr)
                return 1
        return 0
    finally:
        service.stop()
