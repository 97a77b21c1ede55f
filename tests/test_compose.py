"""docker-compose.yml and .env.example: the rules the Compose schema cannot check.

(The schema itself is checked by .ci/validate-compose, which fetches it from the registries.)
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
COMPOSE_TEXT = (ROOT / "docker-compose.yml").read_text()
ENV_EXAMPLE = (ROOT / ".env.example").read_text()
SECRET = re.compile(r"PASSWORD|TOKEN|SECRET", re.IGNORECASE)


def listed() -> set[str]:
    """Variables .env.example names, set or commented out."""
    return set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE, re.MULTILINE))


def test_env_example_lists_every_setting():
    from leadtime.settings import Settings

    names = set()
    for field, info in Settings.model_fields.items():
        alias = info.validation_alias
        names.add(alias.choices[0] if alias is not None else f"LEADTIME_{field.upper()}")
    missing = names - listed()
    assert not missing, f".env.example does not list {sorted(missing)}"


def test_env_example_lists_every_variable_the_compose_file_reads():
    used = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", COMPOSE_TEXT))
    assert not used - listed(), f".env.example does not list {sorted(used - listed())}"


def test_no_secret_in_the_compose_file_or_the_example():
    for name, service in COMPOSE["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if SECRET.search(key) or ("://" in str(value) and "@" in str(value)):
                assert re.search(r"\$\{[A-Z_]+:\?", str(value)), (
                    f"{name}.{key} must come from the environment (${{VAR:?...}}), not the file")
    for line in ENV_EXAMPLE.splitlines():
        if "=" in line and not line.startswith("#") and SECRET.search(line.split("=")[0]):
            assert line.split("=", 1)[1] == "", f".env.example must leave {line} empty"


def test_ports_on_loopback_health_checks_and_named_volumes():
    declared = set(COMPOSE["volumes"])
    for name, service in COMPOSE["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
        assert "healthcheck" in service, f"{name} has no health check"
        for dep, how in (service.get("depends_on") or {}).items():
            assert dep in COMPOSE["services"], f"{name} depends on unknown {dep}"
            if how.get("condition") == "service_healthy":
                assert "healthcheck" in COMPOSE["services"][dep]
        for volume in service.get("volumes", []):
            source = str(volume).split(":")[0]
            if not source.startswith((".", "/", "$")):
                assert source in declared, f"{name} uses undeclared volume {source}"
    assert {"postgres", "mlflow", "prefect-server", "worker", "redis", "api"} <= set(COMPOSE["services"])
    assert COMPOSE["services"]["worker"]["command"] == ["leadtime", "deploy"]


def test_the_image_copies_every_package_the_wheel_ships():
    """The Dockerfile copies packages one by one: a new package must be added there too."""
    import tomllib

    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"][
        "targets"]["wheel"]["packages"]
    copied = set(re.findall(r"^COPY (\w+) \./\1$", (ROOT / "Dockerfile").read_text(), re.M))
    assert set(packages) <= copied, sorted(set(packages) - copied)
