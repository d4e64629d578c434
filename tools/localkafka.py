"""A real Apache Kafka broker on loopback, for development (``hookbus dev``) and the test suite.

The broker is Apache Kafka itself, run from its Maven Central jars in KRaft mode (one node that
is both broker and controller), so what the tests exercise is what production runs. The jars
are resolved once with Maven into a cache outside the project (``$HOOKBUS_CACHE_DIR``, else
``$XDG_CACHE_HOME/hookbus``, else ``~/.cache/hookbus``) and reused.

``python -m tools.localkafka`` starts one and prints its bootstrap address until Ctrl-C.
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import os
import shutil
import socket
import struct
import subprocess
import uuid
from collections.abc import Sequence
from pathlib import Path

from tools.errors import LocalServiceError
from tools.localprocess import LOOPBACK, LocalService, free_ports, run_tool, serve_until_signalled

KAFKA_VERSION = "4.1.1"
SCALA_VERSION = "2.13"
# The log4j2 release Kafka 4.1 is built with; the SLF4J binding must match it.
LOG4J_VERSION = "2.24.3"
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
DEFAULT_JVM_OPTIONS = ("-Xms256m", "-Xmx512m", "-XX:+UseG1GC", "-Djava.awt.headless=true")
# For short-lived brokers (tests): the C1 compiler only starts faster and spends less CPU,
# at the cost of peak throughput that a benchmark would want.
QUICK_START_JVM_OPTIONS = (*DEFAULT_JVM_OPTIONS, "-XX:TieredStopAtLevel=1")

_COMPLETE_MARKER = ".complete"
_METADATA_API_KEY = 3
# Kafka 4 dropped Metadata v0-v3; v4 is the oldest it answers and the last without tagged fields.
_METADATA_VERSION = 4
_PROBE_CLIENT_ID = b"hookbus-localkafka"

_POM = """<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>hookbus.local</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>{version}</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_{scala}</artifactId>
      <version>{version}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka-tools</artifactId>
      <version>{version}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>{log4j}</version>
    </dependency>
  </dependencies>
</project>
"""

_LOG4J2_PROPERTIES = """status = warn
appender.console.type = Console
appender.console.name = console
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.console.ref = console
logger.started.name = kafka.server.KafkaRaftServer
logger.started.level = INFO
"""


def cache_root() -> Path:
    """Where downloaded runtimes are kept: never inside the project."""
    explicit = os.environ.get("HOOKBUS_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "hookbus"


def resolve_kafka_jars(version: str = KAFKA_VERSION, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The directory holding every jar the broker and its tools need, resolved with Maven once.

    Concurrent callers (two test sessions) wait on a file lock; the second finds the cache complete.
    """
    home = Path(cache_dir) if cache_dir is not None else cache_root() / f"kafka-{version}"
    libs = home / "libs"
    if (home / _COMPLETE_MARKER).exists():
        return libs
    home.mkdir(parents=True, exist_ok=True)
    with (home / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (home / _COMPLETE_MARKER).exists():
            _resolve_with_maven(home, libs, version)
            (home / _COMPLETE_MARKER).write_text(f"kafka {version}\n", encoding="utf-8")
    return libs


def _resolve_with_maven(home: Path, libs: Path, version: str) -> None:
    maven = shutil.which("mvn")
    if maven is None:
        raise LocalServiceError("Maven (mvn) is not on PATH: it is needed once to fetch the Kafka jars")
    pom = home / "pom.xml"
    pom.write_text(_POM.format(version=version, scala=SCALA_VERSION, log4j=LOG4J_VERSION), encoding="utf-8")
    partial = home / "libs.partial"
    shutil.rmtree(partial, ignore_errors=True)
    result = subprocess.run(
        [
            maven,
            "-q",
            "-B",
            "-f",
            str(pom),
            f"{DEPENDENCY_PLUGIN}:copy-dependencies",
            f"-DoutputDirectory={partial}",
            "-DincludeScope=runtime",
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        output = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
        raise LocalServiceError(f"Maven could not fetch Apache Kafka {version}:\n{output}")
    shutil.rmtree(libs, ignore_errors=True)
    partial.rename(libs)


def find_java() -> str:
    """The ``java`` of ``$JAVA_HOME``, else the one on PATH."""
    java_home = os.environ.get("JAVA_HOME")
    candidate = Path(java_home) / "bin" / "java" if java_home else None
    if candidate is not None and candidate.exists():
        return str(candidate)
    found = shutil.which("java")
    if found is None:
        raise LocalServiceError("no java found (set JAVA_HOME or put java on PATH): Kafka needs Java 17 or later")
    return found


def new_cluster_id() -> str:
    """A Kafka cluster id: a random UUID in URL-safe base64, never starting with '-' (as Kafka's own)."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode("ascii")
        if not text.startswith("-"):
            return text


def broker_count(host: str, port: int, *, timeout: float = 2.0) -> int:
    """How many live brokers a Metadata request to ``host:port`` reports (0 when it does not answer).

    A broker lists itself only once it has registered with the controller and been unfenced,
    which is when clients can create topics and produce: the right moment to call it ready.
    """
    correlation_id = 1
    header = struct.pack(">hhih", _METADATA_API_KEY, _METADATA_VERSION, correlation_id, len(_PROBE_CLIENT_ID))
    body = struct.pack(">ib", 0, 0)  # no topics, no auto-creation
    request = header + _PROBE_CLIENT_ID + body
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(struct.pack(">i", len(request)) + request)
            (size,) = struct.unpack(">i", _receive(sock, 4))
            response = _receive(sock, size)
    except OSError:
        return 0
    answered_id, _throttle_ms, brokers = struct.unpack_from(">iii", response)
    return brokers if answered_id == correlation_id else 0


def _receive(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the broker closed the connection")
        data += chunk
    return bytes(data)


class LocalKafka(LocalService):
    """One Apache Kafka node (broker and controller) on 127.0.0.1, with its data in a working directory.

    ``port`` and ``controller_port`` default to free ports picked at ``start``; ``restart`` keeps
    them. With ``workdir`` given, the data is kept there after ``stop`` and reused by the next
    ``start`` (the storage is formatted only once).
    """

    name = "kafka"

    def __init__(
        self,
        version: str = KAFKA_VERSION,
        cache_dir: str | os.PathLike[str] | None = None,
        workdir: str | os.PathLike[str] | None = None,
        *,
        port: int = 0,
        controller_port: int = 0,
        jvm_options: Sequence[str] = DEFAULT_JVM_OPTIONS,
        ready_timeout: float = 60.0,
    ) -> None:
        super().__init__(workdir=workdir, ready_timeout=ready_timeout)
        self.version = version
        self.cache_dir = cache_dir
        self.port = port
        self.controller_port = controller_port
        self.jvm_options = tuple(jvm_options)
        self._java = ""
        self._libs = Path()

    @property
    def bootstrap_servers(self) -> str:
        """``127.0.0.1:<port>``, for clients' ``bootstrap_servers``."""
        if not self.port:
            raise LocalServiceError("the Kafka broker has not been started")
        return f"{LOOPBACK}:{self.port}"

    def _prepare(self, workdir: Path) -> None:
        self._java = find_java()
        self._libs = resolve_kafka_jars(self.version, self.cache_dir)
        if not (self.port and self.controller_port):
            picked = iter(free_ports(2))
            self.port = self.port or next(picked)
            self.controller_port = self.controller_port or next(picked)
        data_dir = workdir / "data"
        (workdir / "server.properties").write_text(self._server_properties(data_dir), encoding="utf-8")
        (workdir / "log4j2.properties").write_text(_LOG4J2_PROPERTIES, encoding="utf-8")
        if (data_dir / "meta.properties").exists():
            # Formatted by an earlier start in this working directory: its data and cluster id stay.
            return
        run_tool(
            self._java_command(
                "kafka.tools.StorageTool",
                "format",
                "--cluster-id",
                new_cluster_id(),
                "--config",
                str(workdir / "server.properties"),
            ),
            what="formatting the Kafka storage",
            log_path=self.log_path,
        )

    def _server_properties(self, data_dir: Path) -> str:
        settings = {
            "node.id": "1",
            "process.roles": "broker,controller",
            "listeners": f"PLAINTEXT://{LOOPBACK}:{self.port},CONTROLLER://{LOOPBACK}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{LOOPBACK}:{self.port}",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            # A static voter set, not a dynamic quorum: the data stays valid if the ports change.
            "controller.quorum.voters": f"1@{LOOPBACK}:{self.controller_port}",
            "log.dirs": str(data_dir),
            "num.partitions": "3",
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            # A killed broker's registration blocks its restart until the session expires (default 9 s).
            "broker.heartbeat.interval.ms": "500",
            "broker.session.timeout.ms": "3000",
            "message.max.bytes": str(MAX_MESSAGE_BYTES),
            "replica.fetch.max.bytes": str(MAX_MESSAGE_BYTES),
        }
        return "".join(f"{key}={value}\n" for key, value in settings.items())

    def _java_command(self, main_class: str, *arguments: str) -> list[str]:
        return [
            self._java,
            *self.jvm_options,
            f"-Dlog4j2.configurationFile={self.workdir / 'log4j2.properties'}",
            "-cp",
            str(self._libs / "*"),
            main_class,
            *arguments,
        ]

    def _command(self) -> list[str]:
        return self._java_command("kafka.Kafka", str(self.workdir / "server.properties"))

    def _is_ready(self) -> bool:
        return broker_count(LOOPBACK, self.port) > 0

    def tool_command(self, main_class: str, *arguments: str) -> list[str]:
        """A command line running one of Kafka's tools (e.g. ``org.apache.kafka.tools.ProducerPerformance``)
        with this broker's Java and jars; the caller adds ``--bootstrap-server`` as the tool wants it."""
        if not self._java:
            self._java = find_java()
            self._libs = resolve_kafka_jars(self.version, self.cache_dir)
        return [self._java, "-cp", str(self._libs / "*"), main_class, *arguments]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.localkafka", description="Run a local Apache Kafka broker until Ctrl-C."
    )
    parser.add_argument("--kafka-version", default=KAFKA_VERSION)
    parser.add_argument("--port", type=int, default=0, help="the client port (default: a free one)")
    parser.add_argument("--workdir", help="keep config and data here (default: a temporary directory)")
    args = parser.parse_args(argv)
    kafka = LocalKafka(args.kafka_version, workdir=args.workdir, port=args.port)
    return serve_until_signalled(kafka, lambda: f"KAFKA_BOOTSTRAP_SERVERS={kafka.bootstrap_servers}")


if __name__ == "__main__":
    raise SystemExit(main())
