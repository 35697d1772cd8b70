"""docker-compose.yml, .env.example and deploy/ checked against the code's own settings.

No Docker engine runs here, so these tests read the files: service names,
pinned images, healthchecks, start order, scaling of the worker, environment
variable names the CLI reads, topic names of stream/embedded.py, and the Grafana
provisioning paths and data source.
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest
import yaml

from ingest.kafka.admin import STREAMS
from roadpulse import fullstack
from roadpulse.cli import build_parser
from roadpulse.settings import Settings
from stream.embedded import TOPICS

ROOT = Path(__file__).resolve().parents[1]
ROADPULSE_SERVICES = ("simulator", "worker", "web")
# The brief's names for the variables every roadpulse container gets.
REQUIRED_ENV = {"ROADPULSE_BROKER", "ROADPULSE_INFLUX", "INFLUX_ORG", "INFLUX_BUCKET", "INFLUX_TOKEN",
                "ROADPULSE_TOPIC_PREFIX"}
# Set by compose, not read by roadpulse/ yet (compose passes --topic-prefix meanwhile); may shrink, never grow.
ENV_PENDING_IN_CODE = {"ROADPULSE_TOPIC_PREFIX"}
# Read only by `roadpulse dashboards push` (to an existing Grafana, from a user's shell): compose's Grafana is
# provisioned from files instead, so its containers need no Grafana credentials.
ENV_FOR_USERS_ONLY = {"GRAFANA_API_KEY", "GRAFANA_USER", "GRAFANA_PASSWORD"}
# Commands compose runs that no parser has yet; once one exists its compose command line must parse.
COMMANDS_PENDING_IN_CLI: set[str] = set()
SECRETS = {"INFLUX_TOKEN", "INFLUX_ADMIN_PASSWORD", "GRAFANA_ADMIN_PASSWORD"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def interpolate(value: str) -> str:
    """Compose-style defaults: ${VAR:-default} -> default, ${VAR:?msg} / ${VAR} -> <VAR>, $$ -> $."""
    def one(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        return m.group(3) if m.group(2) else f"<{m.group(1)}>"

    return re.sub(r"\$\$|\$\{(\w+)(?:(:?-)([^}]*)|:?\?[^}]*)?\}", one, value)


def env_of(service: dict) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def names_read_by_code() -> set[str]:
    """Environment variables roadpulse/*.py reads (env_default, os.environ, os.getenv)."""
    pattern = re.compile(r"""(?:env_default|os\.getenv|os\.environ\.get|os\.environ\[)\(?\s*["']([A-Z][A-Z0-9_]+)["']""")
    names: set[str] = set()
    for path in (ROOT / "roadpulse").glob("*.py"):
        names.update(pattern.findall(path.read_text()))
    return names


def test_services_and_pinned_images(compose):
    services = compose["services"]
    assert set(services) == {"kafka", "kafka-init", "influxdb", "grafana", *ROADPULSE_SERVICES}
    assert services["kafka"]["image"] == "apache/kafka:3.9.1"
    assert re.fullmatch(r"influxdb:2\.7\.\d+", services["influxdb"]["image"])
    for name, svc in services.items():
        image = interpolate(svc["image"])
        repo, _, tag = image.rpartition(":")
        assert repo and tag and tag != "latest" and re.search(r"\d", tag), f"{name}: image {image!r} is not pinned"
    version = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    for name in ROADPULSE_SERVICES:
        assert interpolate(services[name]["image"]) == f"roadpulse:{version}"
        dockerfile = ROOT / services[name]["build"]["context"] / services[name]["build"]["dockerfile"]
        assert dockerfile.is_file(), f"{name} builds from a missing {dockerfile}"


def test_every_long_running_service_has_a_healthcheck_and_waits_for_healthy_dependencies(compose):
    services = compose["services"]
    one_shots = {n for n, s in services.items() if str(s.get("restart", "")) == "no"}
    assert one_shots == {"kafka-init"}
    for name, svc in services.items():
        if name not in one_shots:
            test = svc.get("healthcheck", {}).get("test")
            assert test and test[0] in ("CMD", "CMD-SHELL"), f"{name} has no healthcheck"
        for dep, cond in svc.get("depends_on", {}).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            expected = "service_completed_successfully" if dep in one_shots else "service_healthy"
            assert cond.get("condition") == expected, f"{name} -> {dep}: {cond}"
    assert set(services["worker"]["depends_on"]) >= {"kafka", "influxdb", "kafka-init"}
    assert set(services["simulator"]["depends_on"]) >= {"kafka", "kafka-init"}
    assert set(services["grafana"]["depends_on"]) >= {"influxdb"}


def test_worker_can_scale(compose):
    worker = compose["services"]["worker"]
    assert "container_name" not in worker and "ports" not in worker and "hostname" not in worker
    assert worker.get("deploy", {}).get("replicas", 1) == 1  # scaled with --scale, not pinned


def test_published_ports_are_loopback_only(compose):
    for name, svc in compose["services"].items():
        for port in svc.get("ports", []):
            assert interpolate(str(port)).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


def test_roadpulse_containers_get_every_variable_the_cli_reads(compose):
    read = names_read_by_code() - ENV_FOR_USERS_ONLY
    assert {"ROADPULSE_BROKER", "ROADPULSE_INFLUX"} <= read  # the scan itself works
    for name in ROADPULSE_SERVICES:
        env = env_of(compose["services"][name])
        assert read <= set(env), f"{name} lacks {read - set(env)}"
        assert REQUIRED_ENV <= set(env), f"{name} lacks {REQUIRED_ENV - set(env)}"
        unread = {k for k in env if k.startswith(("ROADPULSE_", "INFLUX_"))} - read
        assert unread <= ENV_PENDING_IN_CODE, f"{name} sets {unread - ENV_PENDING_IN_CODE}, which no code reads"
        assert interpolate(env["ROADPULSE_TOPIC_PREFIX"]) == Settings().topic_prefix
        assert interpolate(env["ROADPULSE_BROKER"]) == "kafka://kafka:9092"
        assert interpolate(env["ROADPULSE_INFLUX"]) == "http://influxdb:8086"


def _parsers() -> list[argparse.ArgumentParser]:
    """The CLI parser, and one with the full-stack subcommands (worker, simulate) as roadpulse/fullstack.py adds them."""
    full = argparse.ArgumentParser(prog="roadpulse")
    fullstack.add_arguments(full.add_subparsers(dest="command"))
    return [build_parser(), full]


def _commands(parser: argparse.ArgumentParser) -> set[str]:
    return set(parser._subparsers._group_actions[0].choices)


def test_commands_point_at_the_services_and_parse(compose):
    services = compose["services"]
    kafka_env = env_of(services["kafka"])
    assert "PLAINTEXT://kafka:9092" in kafka_env["KAFKA_ADVERTISED_LISTENERS"]
    init_env = env_of(services["kafka-init"])
    parsed = {}
    for name in ROADPULSE_SERVICES:
        argv = [interpolate(a) for a in services[name]["command"]]
        parsers = [p for p in _parsers() if argv[0] in _commands(p)]
        if not parsers:
            assert argv[0] in COMMANDS_PENDING_IN_CLI, f"{name} runs unknown command {argv[0]!r}"
        for parser in parsers:
            parsed[name] = parser.parse_args(argv)  # SystemExit (a failure) on an unknown flag or bad value
    assert {"simulator", "worker"} <= set(parsed)
    for name in ("simulator", "worker"):
        args = parsed[name]
        assert args.broker == "kafka://kafka:9092"
        assert args.topic_prefix == interpolate(init_env["ROADPULSE_TOPIC_PREFIX"]) == Settings().topic_prefix
        assert args.partitions == int(interpolate(init_env["ROADPULSE_PARTITIONS"]))
    worker = parsed["worker"]
    assert worker.influx == "http://influxdb:8086" and not worker.no_web
    assert str(worker.web_port) in services["worker"]["healthcheck"]["test"][-1]
    spool = [v.split(":")[1] for v in services["worker"]["volumes"] if v.startswith("influx-spool:")]
    assert spool == [str(worker.data_dir / "influx-spool")], "the spool volume must be where the worker spools"
    assert services["web"]["command"][0] == "serve"


def test_topics_are_created_by_the_projects_own_admin_code(compose):
    assert set(TOPICS) <= set(STREAMS)
    init = compose["services"]["kafka-init"]
    script = init["command"][0]
    assert "from ingest.kafka.admin import ensure_topics" in script
    assert 'os.environ["ROADPULSE_TOPIC_PREFIX"]' in script and 'os.environ["ROADPULSE_PARTITIONS"]' in script
    compile(script, "kafka-init", "exec")
    assert init["entrypoint"] == ["python", "-c"]


def test_env_example_lists_every_variable_and_holds_no_secret(compose):
    text = (ROOT / "docker-compose.yml").read_text()
    used = set(re.findall(r"(?<!\$)\$\{(\w+)", text))
    example = (ROOT / ".env.example").read_text()
    listed = dict(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=(.*)$", example, re.M))
    assert used - set(listed) == set(), f".env.example misses {used - set(listed)}"
    for name in SECRETS:
        assert listed[name] == "", f".env.example must not carry a value for {name}"
        assert re.search(r"\$\{" + name + r":\?", text), f"{name} must be required (${{{name}:?...}}), not defaulted"
        assert not re.search(r"\$\{" + name + r":-", text)
    assert compose["services"]["influxdb"]["environment"]["DOCKER_INFLUXDB_INIT_MODE"] == "setup"


def test_grafana_provisioning_matches_the_mounts(compose):
    grafana = compose["services"]["grafana"]
    mounts = dict(v.split(":")[:2] for v in grafana["volumes"])
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    prov = ROOT / "deploy" / "grafana" / "provisioning"
    (ds,) = yaml.safe_load((prov / "datasources" / "influxdb.yaml").read_text())["datasources"]
    assert ds["type"] == "influxdb" and ds["jsonData"]["version"] == "Flux"
    assert ds["url"] == "http://influxdb:8086"
    assert (ds["jsonData"]["organization"], ds["jsonData"]["defaultBucket"]) == ("$INFLUX_ORG", "$INFLUX_BUCKET")
    assert ds["secureJsonData"]["token"] == "$INFLUX_TOKEN"
    assert {"INFLUX_ORG", "INFLUX_BUCKET", "INFLUX_TOKEN"} <= set(env_of(grafana))
    (provider,) = yaml.safe_load((prov / "dashboards" / "roadpulse.yaml").read_text())["providers"]
    assert provider["type"] == "file"
    assert mounts["./dashboards/json"] == provider["options"]["path"] == "/var/lib/grafana/dashboards"
    assert interpolate(compose["services"]["influxdb"]["ports"][0]) == "127.0.0.1:8086:8086"


def test_dockerfile_builds_the_package_on_python_311_slim():
    text = (ROOT / "deploy" / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11(\.\d+)?-slim", text, re.M)
    assert re.search(r"^RUN pip install \.", text, re.M)
    assert re.search(r'^ENTRYPOINT \["roadpulse"\]', text, re.M)
    ignore = (ROOT / "deploy" / "Dockerfile.dockerignore").read_text().split()
    assert {".venv", ".git", ".env"} <= set(ignore)
