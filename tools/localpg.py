"""A throwaway PostgreSQL cluster on loopback, for development and the test suite.

It runs the machine's own PostgreSQL binaries (Debian's ``/usr/lib/postgresql/<version>/bin``,
else ``pg_config --bindir``, else PATH): ``initdb`` into a working directory, then ``postgres`` on a
free port with trust authentication for the ``hookbus`` role on 127.0.0.1. PostgreSQL refuses to
run as root, so under root it runs as the ``postgres`` system account.

``python -m tools.localpg`` starts one and prints its DSN until Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

from tools.errors import LocalServiceError
from tools.localprocess import LOOPBACK, LocalService, RunAs, free_port, run_tool, serve_until_signalled

SUPERUSER = "hookbus"
SYSTEM_ACCOUNT = "postgres"
_DEBIAN_ROOT = Path("/usr/lib/postgresql")


def find_bindir() -> Path:
    """The directory of ``initdb`` and ``postgres``: the newest Debian install, ``pg_config``, or PATH."""
    installed = sorted(
        (path for path in _DEBIAN_ROOT.glob("*/bin") if (path / "initdb").exists()),
        key=lambda path: [int(part) for part in re.findall(r"\d+", path.parent.name)],
    )
    if installed:
        return installed[-1]
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        result = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        bindir = Path(result.stdout.strip())
        if result.returncode == 0 and (bindir / "initdb").exists():
            return bindir
    initdb = shutil.which("initdb")
    if initdb is not None:
        return Path(initdb).parent
    raise LocalServiceError("no PostgreSQL server binaries found (initdb, postgres): install PostgreSQL")


class LocalPostgres(LocalService):
    """One PostgreSQL cluster on 127.0.0.1 with its data in a working directory.

    ``durable=False`` (the default, for tests) turns off fsync and full-page writes: fast, and only
    a crash of the machine (not of PostgreSQL) may lose data, which a throwaway cluster can afford.
    ``synchronous_commit`` stays on unless asked otherwise: without it a killed server loses
    transactions it already reported committed, and the fault tests kill it on purpose.
    """

    name = "postgres"
    # SIGINT is PostgreSQL's "fast" shutdown: it ends open sessions instead of waiting for them.
    stop_signal = signal.SIGINT
    # The postmaster forks a process per connection; a kill must take them too.
    signal_group = True

    def __init__(
        self,
        workdir: str | os.PathLike[str] | None = None,
        *,
        port: int = 0,
        durable: bool = False,
        synchronous_commit: bool = True,
        ready_timeout: float = 60.0,
    ) -> None:
        super().__init__(workdir=workdir, ready_timeout=ready_timeout)
        self.port = port
        self.durable = durable
        self.synchronous_commit = synchronous_commit
        self._bindir = Path()
        self._account = RunAs.account(SYSTEM_ACCOUNT) if os.geteuid() == 0 else None

    @property
    def dsn(self) -> str:
        """``postgresql://hookbus@127.0.0.1:<port>/postgres``."""
        if not self.port:
            raise LocalServiceError("PostgreSQL has not been started")
        return f"postgresql://{SUPERUSER}@{LOOPBACK}:{self.port}/postgres"

    @property
    def _data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def _socket_dir(self) -> Path:
        return self.workdir / "sockets"

    def _run_as(self) -> RunAs | None:
        return self._account

    def _prepare(self, workdir: Path) -> None:
        self._bindir = find_bindir()
        self.port = self.port or free_port()
        self._socket_dir.mkdir(exist_ok=True)
        if self._account is not None:
            self._account.own(workdir)
        if (self._data_dir / "PG_VERSION").exists():
            return
        run_tool(
            [
                str(self._bindir / "initdb"),
                "--pgdata",
                str(self._data_dir),
                "--username",
                SUPERUSER,
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ],
            what="initdb",
            log_path=self.log_path,
            run_as=self._account,
        )

    def _command(self) -> list[str]:
        settings = {
            "listen_addresses": LOOPBACK,
            "unix_socket_directories": str(self._socket_dir),
            "max_connections": "200",
        }
        if not self.durable:
            settings |= {"fsync": "off", "full_page_writes": "off"}
        if not self.synchronous_commit:
            settings["synchronous_commit"] = "off"
        options = [item for key, value in settings.items() for item in ("-c", f"{key}={value}")]
        return [str(self._bindir / "postgres"), "-D", str(self._data_dir), "-p", str(self.port), *options]

    def _is_ready(self) -> bool:
        result = subprocess.run(
            [str(self._bindir / "pg_isready"), "-q", "-h", LOOPBACK, "-p", str(self.port), "-U", SUPERUSER],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=False,
        )
        return result.returncode == 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.localpg", description="Run a throwaway PostgreSQL cluster until Ctrl-C."
    )
    parser.add_argument("--port", type=int, default=0, help="the port (default: a free one)")
    parser.add_argument("--workdir", help="keep the cluster here (default: a temporary directory)")
    parser.add_argument("--durable", action="store_true", help="keep fsync and synchronous commit on")
    args = parser.parse_args(argv)
    postgres = LocalPostgres(args.workdir, port=args.port, durable=args.durable)
    return serve_until_signalled(postgres, lambda: f"HOOKBUS_TEST_PG_DSN={postgres.dsn}")


if __name__ == "__main__":
    raise SystemExit(main())
