"""A real Apache Kafka broker on loopback, for development (``hookbus dev``) and the test suite.

The broker is Apache Kafka itself, run from its Maven Central jars in KRaft mode (one node that
is both broker and controller), so what the tests exercise is what production runs.
:class:`LocalKafkaCluster` runs several such nodes as one cluster (a static controller quorum of
all of them), for the fault tests that kill, freeze and restart brokers one at a time. The jars
are resolved once with Maven into a cache outside the project (``$HOOKBUS_CACHE_DIR``, else
``$XDG_CACHE_HOME/hookbus``, else ``~/.cache/hookbus``) and reused.

``python -m tools.localkafka`` starts one (``--nodes 3``: a cluster) and prints its bootstrap
address until Ctrl-C.
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

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
# Several nodes share a small machine: each gets half the heap of a lone broker.
CLUSTER_JVM_OPTIONS = ("-Xms128m", "-Xmx256m", "-XX:+UseG1GC", "-Djava.awt.headless=true", "-XX:TieredStopAtLevel=1")
LOG_CLEANER_DEDUPE_BUFFER_BYTES = 16 * 1024 * 1024
CLUSTER_NODES = 3
# Kafka's internal topics are replicated this far at most, and need this many in sync to write.
_INTERNAL_REPLICATION = 3
_INTERNAL_MIN_ISR = 2
_QUORUM_LEADER = re.compile(r"^LeaderId:\s*(\d+)", re.MULTILINE)
_QUORUM_TOOL = "org.apache.kafka.tools.MetadataQuorumCommand"
_POLL_SECONDS = 0.2
_CLUSTER_STOP_SECONDS = 10.0

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


@dataclass(frozen=True, slots=True)
class BrokerView:
    """What one broker's Metadata answer says: the live brokers, and each asked topic's partition leaders
    (``-1`` for a partition without a leader)."""

    brokers: frozenset[int]
    leaders: Mapping[str, Mapping[int, int]]


_NO_ANSWER = BrokerView(frozenset(), {})


def broker_view(host: str, port: int, topics: Sequence[str] = (), *, timeout: float = 2.0) -> BrokerView:
    """Ask the broker at ``host:port`` for metadata (no brokers and no leaders when it does not answer).

    A broker lists itself only once it has registered with the controller and been unfenced,
    which is when clients can create topics and produce: the right moment to call it ready.
    """
    correlation_id = 1
    header = struct.pack(">hhih", _METADATA_API_KEY, _METADATA_VERSION, correlation_id, len(_PROBE_CLIENT_ID))
    names = b"".join(struct.pack(">h", len(topic.encode())) + topic.encode() for topic in topics)
    body = struct.pack(">i", len(topics)) + names + struct.pack(">b", 0)  # no auto-creation
    request = header + _PROBE_CLIENT_ID + body
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(struct.pack(">i", len(request)) + request)
            (size,) = struct.unpack(">i", _receive(sock, 4))
            response = _MetadataReader(_receive(sock, size))
    except OSError:
        return _NO_ANSWER
    if response.int32() != correlation_id:
        return _NO_ANSWER
    return response.view()


def broker_count(host: str, port: int, *, timeout: float = 2.0) -> int:
    """How many live brokers a Metadata request to ``host:port`` reports (0 when it does not answer)."""
    return len(broker_view(host, port, timeout=timeout).brokers)


class _MetadataReader:
    """Reads a Metadata v4 response body (after the correlation id), field by field."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._offset = 0

    def _unpack(self, layout: str) -> int:
        (value,) = struct.unpack_from(layout, self._data, self._offset)
        self._offset += struct.calcsize(layout)
        return int(value)

    def int32(self) -> int:
        return self._unpack(">i")

    def _string(self) -> str:
        length = self._unpack(">h")
        if length < 0:
            return ""
        text = self._data[self._offset : self._offset + length].decode("utf-8")
        self._offset += length
        return text

    def _int32_array(self) -> list[int]:
        return [self.int32() for _ in range(self.int32())]

    def view(self) -> BrokerView:
        self.int32()  # throttle time
        brokers: set[int] = set()
        for _ in range(self.int32()):
            brokers.add(self.int32())
            self._string()  # host
            self.int32()  # port
            self._string()  # rack
        self._string()  # cluster id
        self.int32()  # controller id: in KRaft any live broker, not the active controller
        leaders: dict[str, dict[int, int]] = {}
        for _ in range(self.int32()):
            self._unpack(">h")  # error code
            topic = self._string()
            self._unpack(">b")  # internal
            partitions = leaders.setdefault(topic, {})
            for _ in range(self.int32()):
                error_code = self._unpack(">h")
                partition = self.int32()
                leader = self.int32()
                self._int32_array()  # replicas
                self._int32_array()  # in-sync replicas
                partitions[partition] = leader if error_code == 0 else -1
        return BrokerView(frozenset(brokers), leaders)


def _receive(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the broker closed the connection")
        data += chunk
    return bytes(data)


@dataclass(frozen=True, slots=True)
class ClusterLayout:
    """The nodes of one cluster: node ``n`` (from 1) listens on the ``n``-th client and controller port,
    and all of them are the controller quorum (static voters)."""

    cluster_id: str
    client_ports: tuple[int, ...]
    controller_ports: tuple[int, ...]

    @classmethod
    def on_free_ports(cls, nodes: int) -> ClusterLayout:
        ports = free_ports(2 * nodes)
        return cls(new_cluster_id(), ports[:nodes], ports[nodes:])

    @property
    def node_ids(self) -> range:
        return range(1, len(self.client_ports) + 1)

    @property
    def voters(self) -> str:
        """``controller.quorum.voters``: ``id@host:port`` of every node."""
        return ",".join(f"{node}@{LOOPBACK}:{self.controller_port(node)}" for node in self.node_ids)

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(f"{LOOPBACK}:{port}" for port in self.client_ports)

    def client_port(self, node_id: int) -> int:
        return self.client_ports[node_id - 1]

    def controller_port(self, node_id: int) -> int:
        return self.controller_ports[node_id - 1]


class LocalKafka(LocalService):
    """One Apache Kafka node (broker and controller) on 127.0.0.1, with its data in a working directory.

    ``port`` and ``controller_port`` default to free ports picked at ``start``; ``restart`` keeps
    them. With ``workdir`` given, the data is kept there after ``stop`` and reused by the next
    ``start`` (the storage is formatted only once). With ``layout``, it is node ``node_id`` of that
    cluster, on the layout's ports: see :class:`LocalKafkaCluster`.
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
        layout: ClusterLayout | None = None,
        node_id: int = 1,
    ) -> None:
        super().__init__(workdir=workdir, ready_timeout=ready_timeout)
        self.version = version
        self.cache_dir = cache_dir
        self.node_id = node_id
        self.layout = layout
        if layout is not None:
            self.name = f"kafka-{node_id}"
            port, controller_port = layout.client_port(node_id), layout.controller_port(node_id)
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
        if self.layout is None:
            self.layout = ClusterLayout(new_cluster_id(), (self.port,), (self.controller_port,))
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
                self.layout.cluster_id,
                "--config",
                str(workdir / "server.properties"),
            ),
            what="formatting the Kafka storage",
            log_path=self.log_path,
        )

    def _server_properties(self, data_dir: Path) -> str:
        assert self.layout is not None
        nodes = len(self.layout.node_ids)
        replication = str(min(nodes, _INTERNAL_REPLICATION))
        min_isr = str(min(nodes, _INTERNAL_MIN_ISR))
        settings = {
            "node.id": str(self.node_id),
            "process.roles": "broker,controller",
            "listeners": f"PLAINTEXT://{LOOPBACK}:{self.port},CONTROLLER://{LOOPBACK}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{LOOPBACK}:{self.port}",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            # A static voter set, not a dynamic quorum: the data stays valid if the ports change.
            "controller.quorum.voters": self.layout.voters,
            "log.dirs": str(data_dir),
            "num.partitions": "3",
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": replication,
            "transaction.state.log.replication.factor": replication,
            "transaction.state.log.min.isr": min_isr,
            "share.coordinator.state.topic.replication.factor": replication,
            "share.coordinator.state.topic.min.isr": min_isr,
            "group.initial.rebalance.delay.ms": "0",
            # A killed broker's registration blocks its restart until the session expires (default 9 s).
            "broker.heartbeat.interval.ms": "500",
            "broker.session.timeout.ms": "3000",
            "message.max.bytes": str(MAX_MESSAGE_BYTES),
            "replica.fetch.max.bytes": str(MAX_MESSAGE_BYTES),
            # The log cleaner allocates its whole dedupe buffer (128 MiB by default) at start-up: in a cluster node's
            # 256 MiB heap that sometimes ended in OutOfMemoryError. The test topics' compaction needs a few MiB.
            "log.cleaner.dedupe.buffer.size": str(LOG_CLEANER_DEDUPE_BUFFER_BYTES),
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
        return self.node_id in broker_view(LOOPBACK, self.port).brokers

    def tool_command(self, main_class: str, *arguments: str) -> list[str]:
        """A command line running one of Kafka's tools (e.g. ``org.apache.kafka.tools.ProducerPerformance``)
        with this broker's Java and jars; the caller adds ``--bootstrap-server`` as the tool wants it."""
        if not self._java:
            self._java = find_java()
            self._libs = resolve_kafka_jars(self.version, self.cache_dir)
        return [self._java, "-cp", str(self._libs / "*"), main_class, *arguments]


class LocalKafkaCluster:
    """``nodes`` Apache Kafka nodes on 127.0.0.1, each broker and controller with a data directory of its own,
    sharing one cluster id; the controller quorum is all of them (static ``controller.quorum.voters``).

    Each node is a :class:`LocalKafka` run by PID: the fault tests stop (SIGTERM), kill (SIGKILL),
    freeze (SIGSTOP), thaw (SIGCONT) and restart one at a time, and ask which node leads a partition
    and which leads the quorum. As with one broker, the nodes die with the thread that started them.
    """

    name = "kafka-cluster"

    def __init__(
        self,
        nodes: int = CLUSTER_NODES,
        version: str = KAFKA_VERSION,
        cache_dir: str | os.PathLike[str] | None = None,
        workdir: str | os.PathLike[str] | None = None,
        *,
        jvm_options: Sequence[str] = CLUSTER_JVM_OPTIONS,
        ready_timeout: float = 120.0,
    ) -> None:
        self.layout = ClusterLayout.on_free_ports(nodes)
        self._version = version
        self._cache_dir = cache_dir
        self._jvm_options = tuple(jvm_options)
        self._ready_timeout = ready_timeout
        self._given_workdir = Path(workdir).absolute() if workdir is not None else None
        self._workdir: Path | None = None
        self._nodes: dict[int, LocalKafka] = {}
        self._frozen: set[int] = set()

    @property
    def bootstrap_servers(self) -> str:
        """Every node's client address, for clients' ``bootstrap_servers``."""
        return self.layout.bootstrap_servers

    @property
    def node_ids(self) -> range:
        return self.layout.node_ids

    @property
    def running(self) -> bool:
        """Whether every node runs (frozen or not)."""
        return bool(self._nodes) and all(node.running for node in self._nodes.values())

    def node(self, node_id: int) -> LocalKafka:
        try:
            return self._nodes[node_id]
        except KeyError as exc:
            raise LocalServiceError(f"the cluster has no started node {node_id}") from exc

    def where(self) -> str:
        return "; ".join(f"node {node_id}: {node.where()}" for node_id, node in self._nodes.items())

    def start(self) -> None:
        """Format and launch every node, then return once each is an unfenced broker."""
        if self._workdir is not None:
            raise LocalServiceError("the Kafka cluster is already started")
        self._workdir = self._given_workdir or Path(tempfile.mkdtemp(prefix="hookbus-kafka-cluster-"))
        try:
            for node_id in self.node_ids:
                node = LocalKafka(
                    self._version,
                    self._cache_dir,
                    self._workdir / f"node-{node_id}",
                    jvm_options=self._jvm_options,
                    ready_timeout=self._ready_timeout,
                    layout=self.layout,
                    node_id=node_id,
                )
                self._nodes[node_id] = node
                # No node answers before a majority of the quorum runs: launch all, then wait.
                node.start(wait=False)
            for node in self._nodes.values():
                node.wait_ready()
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout: float = _CLUSTER_STOP_SECONDS) -> None:
        """End every node (thawed first, so SIGTERM can be handled) and remove what the cluster made.

        All are asked at once: one at a time, the last ones wait for a quorum that has already gone.
        """
        for node_id in list(self._frozen):
            self.thaw(node_id)
        for node in self._nodes.values():
            node.send_signal(signal.SIGTERM)
        for node in self._nodes.values():
            node.stop(timeout)
        self._nodes.clear()
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

    # --- faults, one node at a time -------------------------------------------------------

    def terminate(self, node_id: int, timeout: float = 30.0) -> int | None:
        """SIGTERM: a controlled shutdown that moves its leaderships away first; the exit code."""
        self._frozen.discard(node_id)
        return self.node(node_id).end(timeout)

    def kill(self, node_id: int) -> None:
        """SIGKILL, as a crash: its data stays for :meth:`restart`."""
        self._frozen.discard(node_id)
        self.node(node_id).kill()

    def freeze(self, node_id: int) -> None:
        """SIGSTOP: the process holds its sockets and answers nothing, as a long GC pause or a hung host."""
        self.node(node_id).send_signal(signal.SIGSTOP)
        self._frozen.add(node_id)

    def thaw(self, node_id: int) -> None:
        self.node(node_id).send_signal(signal.SIGCONT)
        self._frozen.discard(node_id)

    def restart(self, node_id: int, *, wait: bool = True) -> None:
        """Start the node again on its ports and data (ending it first if it runs); with ``wait``, return
        once it is an unfenced broker again (which needs a quorum majority)."""
        self._frozen.discard(node_id)
        self.node(node_id).restart(wait=wait)

    # --- who leads --------------------------------------------------------------------------

    def _answering(self) -> list[LocalKafka]:
        return [node for node_id, node in self._nodes.items() if node.running and node_id not in self._frozen]

    def view(self, topics: Sequence[str] = ()) -> BrokerView:
        """The metadata of the first running, unfrozen node that answers."""
        for node in self._answering():
            view = broker_view(LOOPBACK, node.port, topics)
            if view.brokers:
                return view
        return _NO_ANSWER

    def partition_leader(self, topic: str, partition: int = 0) -> int:
        """The node leading ``topic``'s ``partition`` (``-1`` for none, or when no node answers)."""
        return self.view([topic]).leaders.get(topic, {}).get(partition, -1)

    def active_controller(self, timeout: float = 60.0) -> int:
        """The node leading the controller quorum, as Kafka's ``kafka-metadata-quorum`` tool reports it."""
        controllers = ",".join(f"{LOOPBACK}:{node.controller_port}" for node in self._answering())
        if not controllers:
            raise LocalServiceError("no controller of the cluster runs")
        command = self.node(self.node_ids[0]).tool_command(
            _QUORUM_TOOL, "--bootstrap-controller", controllers, "describe", "--status"
        )
        result = subprocess.run(
            command, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout, check=False
        )
        found = _QUORUM_LEADER.search(result.stdout)
        if result.returncode != 0 or found is None:
            raise LocalServiceError(f"cannot describe the metadata quorum:\n{result.stdout}{result.stderr}")
        return int(found.group(1))

    def wait_brokers(self, expected: frozenset[int] | set[int], timeout: float = 60.0) -> None:
        """Return once the cluster's live brokers are exactly ``expected``."""
        deadline = time.monotonic() + timeout
        while (live := self.view().brokers) != expected:
            if time.monotonic() > deadline:
                raise LocalServiceError(f"live brokers {sorted(live)}, not {sorted(expected)}, after {timeout:g} s")
            time.sleep(_POLL_SECONDS)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.localkafka", description="Run a local Apache Kafka broker until Ctrl-C."
    )
    parser.add_argument("--kafka-version", default=KAFKA_VERSION)
    parser.add_argument("--port", type=int, default=0, help="the client port (default: a free one)")
    parser.add_argument("--workdir", help="keep config and data here (default: a temporary directory)")
    parser.add_argument(
        "--nodes", type=int, default=1, help=f"run a cluster of this many nodes on free ports (e.g. {CLUSTER_NODES})"
    )
    args = parser.parse_args(argv)
    if args.nodes > 1:
        if args.port:
            parser.error("--port is for one broker: a cluster's nodes take free ports")
        cluster = LocalKafkaCluster(args.nodes, args.kafka_version, workdir=args.workdir)
        return serve_until_signalled(cluster, lambda: f"KAFKA_BOOTSTRAP_SERVERS={cluster.bootstrap_servers}")
    kafka = LocalKafka(args.kafka_version, workdir=args.workdir, port=args.port)
    return serve_until_signalled(kafka, lambda: f"KAFKA_BOOTSTRAP_SERVERS={kafka.bootstrap_servers}")


if __name__ == "__main__":
    raise SystemExit(main())
