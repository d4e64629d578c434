"""The README's two commands on a fresh Debian, as root, as a user with sudo and as one without.

Run by ``scripts/containers fresh-debian`` (see conftest.py), one fresh container a test: the
system packages really come from Debian's mirror, hookbus and its dependencies from PyPI, the
Kafka jars from Maven Central, so a package Debian renamed or a pin that has no wheel for the
suite's Python fails here as it would for a user.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import threading
import time

import pytest

from tests.fresh_debian.conftest import PLAIN_USER, ROOT_USER, SUDO_USER, FreshDebian, FreshDebianError, checkout

# A first start downloads Java and Maven from Debian, hookbus's dependencies from PyPI and the
# Kafka jars from Maven Central; measured at 1 to 2 minutes here.
FIRST_START_SECONDS = 480
SET_UP_SECONDS = 480
_PID_FILE = "/tmp/hookbus-run.pid"
_SEND_LINE = re.compile(r"^\s+(\S*hookbus send october.*)$")
_EVENTS_LINE = re.compile(r"^\s+Events\s+SQLite database (\S+), table (\w+)$")
_ROOT_COMMAND = re.compile(r"^bootstrap:\s+(apt-get update && apt-get install -y [\w.+ -]+)$", re.MULTILINE)


class _Output:
    """The lines a process writes, collected by a thread so the test can wait for one."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self._thread.start()

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    def wait_for(self, pattern: re.Pattern[str], timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        seen = 0
        with self._changed:
            while True:
                for line in self.lines[seen:]:
                    if match := pattern.match(line):
                        return match
                seen = len(self.lines)
                if not self._thread.is_alive() or time.monotonic() > deadline:
                    raise FreshDebianError(f"no line matching {pattern.pattern!r}; the output:\n" + self.text())
                self._changed.wait(timeout=1.0)

    def text(self) -> str:
        return "\n".join(self.lines[-80:])


def _first_event(fresh: FreshDebian, user: str) -> None:
    """``scripts/run`` until its banner, then the banner's ``send`` line from another directory,
    then the event's row in the SQLite database the banner names; then Ctrl-C, and a clean stop."""
    # scripts/run execs hookbus, so this shell's PID becomes hookbus dev's.
    process = fresh.start(user, f"echo $$ > {_PID_FILE}.{user} && exec scripts/run")
    output = _Output(process)
    try:
        events = output.wait_for(_EVENTS_LINE, FIRST_START_SECONDS)
        send = output.wait_for(_SEND_LINE, 60).group(1)
        sent = fresh.run(user, send, directory="/tmp", timeout=60)
        assert sent.returncode == 0, f"{send!r} from /tmp: {sent.stdout}{sent.stderr}\n{output.text()}"

        database, table = events.group(1), events.group(2)
        query = f"select count(*) from {table}"  # noqa: S608 - the table name the banner printed
        count = f"import sqlite3; print(sqlite3.connect({database!r}).execute({query!r}).fetchone()[0])"
        python = f"{checkout(user)}/.venv/bin/python -c {shlex.quote(count)}"
        deadline = time.monotonic() + 60
        while int(fresh.check(user, python, directory="/tmp")) < 1:
            assert time.monotonic() < deadline, f"no row in {database} 60 s after {send!r}:\n{output.text()}"
            time.sleep(1)
    finally:
        fresh.run(user, f"kill -INT $(cat {_PID_FILE}.{user})", directory="/tmp")
        try:
            status = process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert status == 0, output.text()
    assert "Traceback" not in output.text(), output.text()


@pytest.mark.fresh_user(ROOT_USER)
@pytest.mark.timeout(FIRST_START_SECONDS + SET_UP_SECONDS + 300)
def test_root_sets_up_and_runs_the_tests_then_runs_hookbus(fresh: FreshDebian) -> None:
    # The test set-up (PostgreSQL's server, the development tools) and a test file that uses them.
    tests = "scripts/test tests/scripts/test_bootstrap.py -q -p no:cacheprovider"
    tested = fresh.run(ROOT_USER, tests, timeout=SET_UP_SECONDS)
    assert tested.returncode == 0, tested.stdout[-3000:] + tested.stderr[-3000:]
    assert "passed" in tested.stdout
    assert "Traceback" not in tested.stderr

    _first_event(fresh, ROOT_USER)


@pytest.mark.fresh_user(SUDO_USER)
@pytest.mark.timeout(FIRST_START_SECONDS + 300)
def test_a_user_with_sudo_runs_hookbus_and_sends_the_first_event(fresh: FreshDebian) -> None:
    _first_event(fresh, SUDO_USER)


@pytest.mark.fresh_user(PLAIN_USER)
@pytest.mark.timeout(SET_UP_SECONDS + 300)
def test_a_user_without_sudo_is_told_the_exact_command_and_it_works(fresh: FreshDebian) -> None:
    refused = {command: fresh.run(PLAIN_USER, f"scripts/{command}", timeout=120) for command in ("run", "test")}

    for command, result in refused.items():
        assert result.returncode == 1, (command, result.stdout, result.stderr)
        assert "Traceback" not in result.stdout + result.stderr
    run_command = _ROOT_COMMAND.search(refused["run"].stderr)
    assert run_command, refused["run"].stderr
    # Only what each command needs: running needs no PostgreSQL server.
    assert run_command.group(1).split()[6:] == ["python3", "python3-venv", "default-jre-headless", "maven"]
    test_command = _ROOT_COMMAND.search(refused["test"].stderr)
    assert test_command, refused["test"].stderr
    # Testing also needs PostgreSQL's server and the browser the console's tests drive.
    expected = [*run_command.group(1).split()[6:], "postgresql", "chromium", "chromium-driver"]
    assert test_command.group(1).split()[6:] == expected

    # The line printed is the whole fix: run by root, the user's next try sets hookbus up.
    fresh.check(ROOT_USER, run_command.group(1), directory="/", timeout=SET_UP_SECONDS)
    fresh.check(PLAIN_USER, "scripts/bootstrap run", timeout=SET_UP_SECONDS)
