"""The container setup, checked without a Docker engine.

docker-compose.yml is validated structurally with PyYAML (services, commands, ports,
healthchecks, dependencies, volumes, env files), the configuration it mounts is loaded and
checked by hookbus itself with the env file examples, the Dockerfile's key lines are read,
and the image's healthcheck script is run against a real gateway and a real console. Nothing here builds or
runs an image: scripts/containers does, and tests/containers checks the running stack.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
import re
import shlex
import tomllib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from hookbus.cli import COMMAND_GROUP, build_parser
from hookbus.config import CONFIG_ENV, HookbusConfig, KafkaConfig, OpsConfig, load_config
from hookbus.errors import ConfigError
from hookbus.ops_server import DESTINATION_UNREACHABLE, KAFKA_UNREACHABLE, SPOOL_DRAINING, serving_ops
from ingest.decision import check_sources
from ingest.server import serve
from normalizer.normalizer import Normalizer
from sinks.configure import configure_sink
from tests.support import REPO_ROOT, free_port
from tests.tools.console.test_api import running_console
from tools.console import console_settings

COMPOSE = REPO_ROOT / "docker-compose.yml"
DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
HEALTHCHECK_SCRIPT = REPO_ROOT / "deploy" / "healthcheck.py"
HOOKBUS_SERVICES = ("gateway", "normalizer", "sink-postgres", "console")
CONSOLE_TOKEN_ENV = "HOOKBUS_CONSOLE_TOKEN"
_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-[^}]*)?\}")
_ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def _service(compose: Mapping[str, Any], name: str) -> dict[str, Any]:
    service = compose["services"][name]
    assert isinstance(service, dict)
    return service


def _container_config_path(service: Mapping[str, Any]) -> str:
    path = service["environment"][CONFIG_ENV]
    assert isinstance(path, str)
    return path


def _mounts(service: Mapping[str, Any]) -> dict[str, str]:
    """Container path -> what is mounted there (a host path or a named volume)."""
    mounts = {}
    for entry in service.get("volumes", []):
        source, target, *_ = entry.split(":")
        mounts[target] = source
    return mounts


def _mounted_config(service: Mapping[str, Any]) -> Path:
    host_path = _mounts(service)[_container_config_path(service)]
    return (REPO_ROOT / host_path).resolve()


def _env_files(service: Mapping[str, Any]) -> list[tuple[str, bool]]:
    """(path, required) of each of the service's env files, in the order Compose reads them."""
    entries = service["env_file"]
    return [(entry, True) if isinstance(entry, str) else (entry["path"], entry["required"]) for entry in entries]


def _env_example_values(service: Mapping[str, Any]) -> dict[str, str]:
    """The variables the examples of the service's env files assign."""
    values: dict[str, str] = {}
    for env_file, _ in _env_files(service):
        if not env_file.endswith(".example"):
            continue
        example = REPO_ROOT / env_file
        assert example.is_file(), f"{env_file} is not in the repository"
        for line in example.read_text(encoding="utf-8").splitlines():
            if match := _ASSIGNMENT.match(line):
                values[match.group(1)] = match.group(2)
    return values


def _references(value: Any) -> set[str]:
    """The variables that the string values of a parsed YAML document reference."""
    if isinstance(value, str):
        return set(_REFERENCE.findall(value))
    if isinstance(value, dict):
        return set().union(*(_references(item) for item in value.values()))
    if isinstance(value, list):
        return set().union(*(_references(item) for item in value))
    return set()


def _healthcheck_command(service: Mapping[str, Any]) -> list[str]:
    test = service["healthcheck"]["test"]
    assert test[0] in {"CMD", "CMD-SHELL"}
    return list(test[1:])


# --- docker-compose.yml -------------------------------------------------------------------


def test_compose_has_the_pipeline_and_its_services(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"kafka", "postgres", *HOOKBUS_SERVICES}


def test_kafka_is_a_single_kraft_node_of_the_official_image(compose: dict[str, Any]) -> None:
    kafka = _service(compose, "kafka")
    environment = kafka["environment"]

    assert re.fullmatch(r"apache/kafka:4\.\d+\.\d+", kafka["image"])
    assert set(environment["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert environment["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{environment['KAFKA_NODE_ID']}@kafka:9093"
    listeners = dict(item.split("://") for item in environment["KAFKA_LISTENERS"].split(","))
    assert listeners == {"PLAINTEXT": ":9092", environment["KAFKA_CONTROLLER_LISTENER_NAMES"]: ":9093"}
    assert environment["KAFKA_ADVERTISED_LISTENERS"] == "PLAINTEXT://kafka:9092"
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", environment["CLUSTER_ID"])
    assert environment["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert _mounts(kafka)[environment["KAFKA_LOG_DIRS"]] == "kafka-data"
    assert "kafka-broker-api-versions.sh" in " ".join(_healthcheck_command(kafka))


def test_postgres_keeps_its_data_and_reports_health(compose: dict[str, Any]) -> None:
    postgres = _service(compose, "postgres")

    assert postgres["image"] == "postgres:16"
    assert _mounts(postgres)["/var/lib/postgresql/data"] == "postgres-data"
    assert "pg_isready" in " ".join(_healthcheck_command(postgres))
    assert {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"} <= set(_env_example_values(postgres))


@pytest.mark.parametrize("name", HOOKBUS_SERVICES)
def test_each_hookbus_service_runs_a_real_subcommand(
    compose: dict[str, Any], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = _service(compose, name)
    command = service["command"]
    available = {entry.name for entry in entry_points(group=COMMAND_GROUP)}
    assert command[0] in available
    # The image's ENTRYPOINT is `hookbus`: the command must parse as the CLI's arguments,
    # with --config taken from $HOOKBUS_CONFIG as in the container.
    monkeypatch.setenv(CONFIG_ENV, _container_config_path(service))
    arguments = build_parser(command[0]).parse_args(command)
    assert arguments.config == _container_config_path(service)
    if command[0] == "sink":
        sinks = yaml.safe_load(_mounted_config(service).read_text(encoding="utf-8"))["sinks"]
        assert arguments.name in sinks
        assert sinks[arguments.name]["type"] == "postgres"


def test_the_hookbus_image_is_built_once_and_shared(compose: dict[str, Any]) -> None:
    built = [name for name in HOOKBUS_SERVICES if "build" in _service(compose, name)]
    assert built == ["gateway"]
    assert _service(compose, "gateway")["build"] == "."
    assert {_service(compose, name)["image"] for name in HOOKBUS_SERVICES} == {"hookbus:latest"}


def test_compose_has_no_key_older_composes_refuse() -> None:
    # Compose 1.29 (Debian 12's docker-compose) refuses a top-level `name:`.
    assert "name" not in yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def test_the_local_images_override_only_swaps_images(compose: dict[str, Any]) -> None:
    override = yaml.safe_load((REPO_ROOT / "deploy" / "compose.local-images.yaml").read_text(encoding="utf-8"))
    services = override["services"]

    assert set(override) == {"services"}
    assert {name: set(service) for name, service in services.items()} == {
        "kafka": {"image"},
        "postgres": {"image"},
        "gateway": {"build"},
    }
    assert set(services["gateway"]["build"]) == {"args"}
    assert set(services["gateway"]["build"]["args"]) == {"PYTHON_IMAGE"}


@pytest.mark.parametrize("name", HOOKBUS_SERVICES)
def test_each_hookbus_service_is_configured_and_waits_for_kafka(compose: dict[str, Any], name: str) -> None:
    service = _service(compose, name)

    assert service["restart"] == "unless-stopped"
    assert _mounted_config(service) == (REPO_ROOT / "deploy" / "hookbus.yaml").resolve()
    assert _mounted_config(service).is_file()
    assert service["depends_on"]["kafka"] == {"condition": "service_healthy"}


def test_the_sink_waits_for_postgres(compose: dict[str, Any]) -> None:
    assert _service(compose, "sink-postgres")["depends_on"]["postgres"] == {"condition": "service_healthy"}


def test_every_awaited_service_has_a_healthcheck(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for dependency, condition in service.get("depends_on", {}).items():
            assert condition["condition"] in {"service_healthy", "service_started", "service_completed_successfully"}
            if condition["condition"] == "service_healthy":
                assert "healthcheck" in compose["services"][dependency], (name, dependency)


def test_the_gateway_publishes_its_port_checks_its_health_and_keeps_its_spool(compose: dict[str, Any]) -> None:
    gateway = _service(compose, "gateway")
    config = yaml.safe_load(_mounted_config(gateway).read_text(encoding="utf-8"))["gateway"]

    assert gateway["ports"] == [f"8080:{config['port']}"]
    assert _healthcheck_command(gateway) == ["hookbus-healthcheck"]
    assert _mounts(gateway)[config["spool_dir"]] == "gateway-spool"


def test_named_volumes_are_declared(compose: dict[str, Any]) -> None:
    used = {
        source
        for service in compose["services"].values()
        for source in _mounts(service).values()
        if not source.startswith((".", "/"))
    }
    assert used == set(compose["volumes"]) == {"kafka-data", "postgres-data", "gateway-spool", "console-index"}


def test_the_console_is_published_on_the_hosts_loopback_only_and_keeps_its_index_on_a_volume(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    console = _service(compose, "console")
    settings = console_settings(_load_with_examples(console, monkeypatch))

    # Every address of the container, so the published port reaches it; published on loopback only.
    assert settings.host == "0.0.0.0"  # noqa: S104
    assert console["ports"] == [f"127.0.0.1:8091:{settings.port}"]
    assert _healthcheck_command(console) == ["hookbus-healthcheck"]
    assert _mounts(console)[str(Path(settings.index_path).parent)] == "console-index"
    assert "build" not in console


def test_the_console_refuses_the_examples_empty_token_and_a_short_one(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    console = _service(compose, "console")
    assert _env_example_values(console)[CONSOLE_TOKEN_ENV] == ""
    config = _load_with_examples(console, monkeypatch)

    for token in ("", "fifteen-chars-x"):
        monkeypatch.setenv(CONSOLE_TOKEN_ENV, token)
        with pytest.raises(ConfigError, match=r"console\.token"):
            console_settings(config)


@pytest.mark.parametrize("name", HOOKBUS_SERVICES)
def test_every_variable_of_the_mounted_config_is_documented_in_an_env_example_or_set_by_compose(
    compose: dict[str, Any], name: str
) -> None:
    service = _service(compose, name)
    referenced = _references(yaml.safe_load(_mounted_config(service).read_text(encoding="utf-8")))

    assert referenced
    assert referenced <= set(_env_example_values(service)) | set(service["environment"])


def test_compose_runs_its_single_broker_in_development_mode_and_the_config_asks_for_production_topics(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    service = _service(compose, "gateway")
    composed = _load_with_examples(service, monkeypatch).kafka
    assert (composed.replication_factor, composed.min_insync_replicas, composed.development_mode) == (1, 1, True)

    for variable in service["environment"]:
        if variable.startswith("HOOKBUS_KAFKA_"):
            monkeypatch.delenv(variable)
    production = load_config(_mounted_config(service)).kafka
    assert (production.replication_factor, production.min_insync_replicas, production.development_mode) == (3, 2, False)


@pytest.mark.parametrize("name", [*HOOKBUS_SERVICES, "postgres"])
def test_a_clean_checkout_needs_no_env_file_of_the_user(compose: dict[str, Any], name: str) -> None:
    # The committed examples are read first, the user's copies (not committed) after them and
    # only where they exist: `docker compose config` works on a fresh clone (tests/containers
    # runs it on one).
    env_files = _env_files(_service(compose, name))
    examples = [path for path, _ in env_files if path.endswith(".example")]
    copies = [(path, required) for path, required in env_files if not path.endswith(".example")]

    assert all(required for path, required in env_files if path.endswith(".example"))
    assert copies == [(path.removesuffix(".example"), False) for path in examples]
    assert env_files[: len(examples)] == [(path, True) for path in examples]


def test_env_examples_hold_no_secret() -> None:
    for example in (REPO_ROOT / "deploy").glob("*.env.example"):
        for line in example.read_text(encoding="utf-8").splitlines():
            if (match := _ASSIGNMENT.match(line)) and re.search(r"SECRET|KEY|PASSWORD|TOKEN", match.group(1)):
                assert match.group(2) == "", f"{example.name}: {match.group(1)} must be left empty"


def _load_with_examples(service: Mapping[str, Any], monkeypatch: pytest.MonkeyPatch) -> HookbusConfig:
    """The mounted configuration as a container loads it once the examples are filled in."""
    for variable, value in _env_example_values(service).items():
        filled = value or ("" if variable.endswith("_PREVIOUS") else f"test-{variable.lower()}")
        monkeypatch.setenv(variable, filled)
    for variable, value in service["environment"].items():
        monkeypatch.setenv(variable, value)
    return load_config(_mounted_config(service))


def test_the_mounted_config_passes_the_services_own_checks(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _load_with_examples(_service(compose, "sink-postgres"), monkeypatch)

    check_sources(config.sources, file=config.path)
    Normalizer({source.name: source for source in config.sources})
    assert configure_sink(config, "pg").sink_type.name == "postgres"
    assert {source.provider for source in config.sources} == {
        "october",
        "officernd",
        "offerte_adviseur",
        "octamile",
        "generic",
    }
    october = config.source("october")
    assert october is not None
    assert len(october.secrets) == 1  # the empty rotation slot is left out


def test_empty_secrets_stop_the_services_at_startup(compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    service = _service(compose, "gateway")
    for variable, value in _env_example_values(service).items():
        monkeypatch.setenv(variable, value)

    with pytest.raises(ConfigError, match="secret"):
        load_config(_mounted_config(service))


# --- Dockerfile ---------------------------------------------------------------------------


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    instructions = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def _last(instructions: list[tuple[str, str]], keyword: str) -> str:
    values = [rest for name, rest in instructions if name == keyword]
    assert values, f"the Dockerfile has no {keyword}"
    return values[-1]


def test_the_dockerfile_needs_no_registry_but_its_base_images() -> None:
    # A `# syntax=` line makes every build pull a frontend image first.
    assert not re.search(r"^#\s*syntax\s*=", DOCKERFILE.read_text(encoding="utf-8"), flags=re.MULTILINE)


def test_the_dockerfile_builds_a_wheel_then_a_slim_runtime() -> None:
    instructions = _instructions()
    stages = [rest for name, rest in instructions if name == "FROM"]

    assert _last(instructions, "ARG") == "PYTHON_IMAGE=python:3.11-slim"
    assert stages == ["${PYTHON_IMAGE} AS build", "${PYTHON_IMAGE} AS runtime"]
    runs = " ".join(rest for name, rest in instructions if name == "RUN")
    # The wheels are resolved within the lock file's pins (scripts/lock), which the image copies in.
    assert 'pip wheel --wheel-dir /wheels --constraint constraints.txt ".[fast]"' in runs
    assert ("COPY", "constraints.txt ./") in instructions
    assert 'pip install --no-index --find-links=/wheels "hookbus[fast]"' in runs
    pyproject = (REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(r'^fast = \["uvloop', pyproject, flags=re.MULTILINE), "the fast extra installs uvloop"


def test_the_image_runs_hookbus_as_a_non_root_user_with_a_healthcheck() -> None:
    instructions = _instructions()

    assert _last(instructions, "ENTRYPOINT") == '["hookbus"]'
    user = _last(instructions, "USER").split(":")[0]
    assert user not in {"root", "0"}
    healthcheck = _last(instructions, "HEALTHCHECK")
    assert healthcheck.endswith('CMD ["hookbus-healthcheck"]')
    assert "COPY --chmod=0755 deploy/healthcheck.py /usr/local/bin/hookbus-healthcheck" in [
        f"{name} {rest}" for name, rest in instructions
    ]


def test_the_image_copies_every_package_the_distribution_installs() -> None:
    """A package left out of the image imports nowhere in it: providers/ once was, and every
    container would have known no provider at all."""
    include = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"][
        "packages"
    ]["find"]["include"]
    packages = {pattern.rstrip("*") for pattern in include}
    copied = {
        part.rstrip("/")
        for name, rest in _instructions()
        if name == "COPY" and "--from=" not in rest
        for part in shlex.split(rest)[:-1]
        if not part.startswith("--")
    }
    assert packages <= copied, f"not copied into the image: {sorted(packages - copied)}"


def test_the_build_context_holds_what_the_dockerfile_copies() -> None:
    allowed = {
        line[1:].strip() for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines() if line.startswith("!")
    }
    for name, rest in _instructions():
        if name != "COPY" or "--from=" in rest:
            continue
        sources = [part for part in shlex.split(rest) if not part.startswith("--")][:-1]
        for source in sources:
            assert (REPO_ROOT / source).exists(), source
            assert source in allowed, f"{source} is excluded by .dockerignore"


# --- the healthcheck script ---------------------------------------------------------------


@pytest.fixture(scope="module")
def healthcheck() -> ModuleType:
    spec = importlib.util.spec_from_file_location("hookbus_healthcheck", HEALTHCHECK_SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_healthcheck_reads_the_subcommand_from_the_command_line(healthcheck: ModuleType) -> None:
    entrypoint = ["/usr/local/bin/python3.11", "/usr/local/bin/hookbus"]

    assert healthcheck.subcommand(healthcheck.hookbus_arguments([*entrypoint, "gateway", "--port", "9000"])) == (
        "gateway",
        ["--port", "9000"],
    )
    assert healthcheck.subcommand(
        healthcheck.hookbus_arguments([*entrypoint, "--log-level", "debug", "sink", "pg"])
    ) == (
        "sink",
        ["pg"],
    )
    assert healthcheck.subcommand(healthcheck.hookbus_arguments(["python", "-m", "hookbus", "dev"]))[0] == "dev"
    assert healthcheck.hookbus_arguments(["/usr/local/bin/hookbus-healthcheck"]) == []
    assert healthcheck.option(["--port=81", "--config", "c.yaml"], "--port") == "81"


def test_the_healthcheck_is_healthy_for_subcommands_that_serve_no_http(
    healthcheck: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without a configuration file a stage has no ops server either.
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    for command in (["normalizer"], ["sink", "pg"], ["--help"]):
        assert healthcheck.check(["python", "/usr/local/bin/hookbus", *command]) == healthcheck.HEALTHY


def test_the_stages_check_their_ops_server(compose: dict[str, Any]) -> None:
    for name in ("normalizer", "sink-postgres"):
        assert _healthcheck_command(_service(compose, name)) == ["hookbus-healthcheck"]
    mounted = yaml.safe_load((REPO_ROOT / "deploy" / "hookbus.yaml").read_text(encoding="utf-8"))
    assert mounted["ops"]["port"] > 0


@dataclass
class _Readiness:
    reasons: list[str] = field(default_factory=list)

    async def not_ready_reasons(self) -> list[str]:
        return self.reasons


async def test_the_healthcheck_probes_a_stages_ops_server(
    healthcheck: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ops = OpsConfig(host="127.0.0.1", port=free_port())
    config_file = tmp_path / "hookbus.yaml"
    config_file.write_text(yaml.safe_dump({"ops": {"port": ops.port}}), encoding="utf-8")
    monkeypatch.setenv(CONFIG_ENV, str(config_file))

    async def check(*arguments: str) -> int:
        # The probe blocks (urllib), and the server it probes runs on this loop.
        result: int = await asyncio.to_thread(healthcheck.check, ["python", "/usr/local/bin/hookbus", *arguments])
        return result

    assert await check("normalizer") == healthcheck.UNHEALTHY
    readiness = _Readiness()
    async with serving_ops(ops, readiness):
        assert await check("normalizer") == healthcheck.HEALTHY
        assert await check("sink", "pg") == healthcheck.HEALTHY
        # Alive but unable to write: unhealthy, whatever the reason.
        readiness.reasons = [DESTINATION_UNREACHABLE]
        assert await check("sink", "pg") == healthcheck.UNHEALTHY
        # A gateway whose spool drains still takes webhooks in; any other reason stops it.
        readiness.reasons = [SPOOL_DRAINING]
        assert await check("normalizer") == healthcheck.UNHEALTHY
        assert await check("gateway", "--port", str(ops.port)) == healthcheck.HEALTHY
        readiness.reasons = [KAFKA_UNREACHABLE, SPOOL_DRAINING]
        assert await check("gateway", "--port", str(ops.port)) == healthcheck.UNHEALTHY


@pytest.fixture
async def gateway_port(
    kafka_config: KafkaConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[int]:
    """A real gateway on a free port, configured from a file that names that port."""
    port = free_port()
    config_file = tmp_path / "hookbus.yaml"
    config_file.write_text(
        yaml.safe_dump(
            {
                "kafka": {
                    "bootstrap_servers": kafka_config.bootstrap_servers,
                    "raw_topic": kafka_config.raw_topic,
                    "events_topic": kafka_config.events_topic,
                    "dlq_topic": kafka_config.dlq_topic,
                    "topic_partitions": 1,
                    "development_mode": True,
                },
                "gateway": {"port": port, "spool_dir": str(tmp_path / "spool")},
                "sources": [{"name": "crm", "provider": "generic", "api_key": "test-key"}],
            }
        ),
        encoding="utf-8",
    )
    monkeypatch.setenv(CONFIG_ENV, str(config_file))
    config = load_config(config_file)
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(serve(config, host="127.0.0.1", port=port, stop=stop, ready=ready))
    waiting = asyncio.create_task(ready.wait())
    await asyncio.wait({task, waiting}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
    waiting.cancel()
    if task.done():
        task.result()
    try:
        yield port
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


async def test_the_healthcheck_probes_a_running_gateway(healthcheck: ModuleType, gateway_port: int) -> None:
    entrypoint = ["python", "/usr/local/bin/hookbus"]

    async def check(*arguments: str) -> int:
        # The probe blocks (urllib), and the gateway it probes runs on this loop.
        result: int = await asyncio.to_thread(healthcheck.check, [*entrypoint, *arguments])
        return result

    assert await check("gateway", "--port", str(gateway_port)) == healthcheck.HEALTHY
    # Without --port, the port comes from the configuration in $HOOKBUS_CONFIG.
    assert await check("gateway") == healthcheck.HEALTHY
    assert await check("gateway", "--port", str(free_port())) == healthcheck.UNHEALTHY
    assert await check("dev", "--port", str(free_port())) == healthcheck.UNHEALTHY


async def test_the_healthcheck_probes_a_running_console(
    healthcheck: ModuleType, kafka_config: KafkaConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_file = tmp_path / "hookbus.yaml"
    console = {"token": f"${{{CONSOLE_TOKEN_ENV}}}", "host": "127.0.0.1", "port": free_port(),
               "index_path": str(tmp_path / "console" / "index.sqlite3")}  # fmt: skip
    config_file.write_text(yaml.safe_dump({"console": console}), encoding="utf-8")
    elsewhere = tmp_path / "elsewhere.yaml"
    elsewhere.write_text(yaml.safe_dump({"console": {**console, "port": free_port()}}), encoding="utf-8")
    monkeypatch.setenv(CONSOLE_TOKEN_ENV, "console-token-for-the-healthcheck")
    monkeypatch.setenv(CONFIG_ENV, str(config_file))

    async def check(*arguments: str) -> int:
        # The probe blocks (urllib), and the console it probes runs on this loop.
        result: int = await asyncio.to_thread(healthcheck.check, ["python", "/usr/local/bin/hookbus", *arguments])
        return result

    assert await check("console") == healthcheck.UNHEALTHY
    async with running_console(dataclasses.replace(load_config(config_file), kafka=kafka_config)):
        deadline = asyncio.get_running_loop().time() + 30
        # Ready once the feeder has looked for its topics, a moment after the listener opens.
        while await check("console") != healthcheck.HEALTHY:
            assert asyncio.get_running_loop().time() < deadline, "the console never became ready"
            await asyncio.sleep(0.2)
        assert await check("console", "--config", str(elsewhere)) == healthcheck.UNHEALTHY
        # A token the console would refuse: it cannot have started, whatever answers on the port.
        monkeypatch.setenv(CONSOLE_TOKEN_ENV, "short")
        assert await check("console") == healthcheck.UNHEALTHY
