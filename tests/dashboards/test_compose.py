"""The docker-compose stack without Docker: the compose file validates against the Compose
Specification schema, everything it mounts or builds exists, and the pieces agree with each other
(datasource UIDs, ports, service names, paths)."""

from __future__ import annotations

import json
import re
import urllib.parse

import jsonschema
import pytest
import yaml

from dashboards.panels import PROMETHEUS_UID, TEMPO_UID
from tests.dashboards.helpers import ROOT, all_panels, committed_dashboards

SCHEMA = json.loads((ROOT / "tests" / "fixtures" / "dashboards" / "compose-spec.json").read_text())
# The schema declares draft-07 by a URL jsonschema does not map, so name the draft explicitly.
VALIDATOR = jsonschema.Draft7Validator(SCHEMA)


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def provisioned_datasources() -> dict[str, dict]:
    doc = yaml.safe_load((ROOT / "grafana" / "provisioning" / "datasources" / "datasources.yml").read_text())
    return {ds["uid"]: ds for ds in doc["datasources"]}


def bind_mounts(service: dict) -> list[tuple[str, str]]:
    """(host path, container path) of each bind mount in short syntax (named volumes excluded)."""
    mounts = []
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            mounts.append((source, target))
    return mounts


def test_compose_file_validates_against_the_compose_spec() -> None:
    VALIDATOR.validate(compose())


def test_the_schema_rejects_a_broken_compose_file() -> None:
    broken = compose()
    broken["services"]["proxy"]["healthcheck"]["retries"] = [5]
    broken["services"]["grafana"]["portz"] = ["3000:3000"]
    with pytest.raises(jsonschema.ValidationError):
        VALIDATOR.validate(broken)


def test_services_and_demo_profile() -> None:
    services = compose()["services"]
    assert {"proxy", "prometheus", "grafana", "tempo", "emulator", "traffic"} <= set(services)
    for always_on in ("proxy", "prometheus", "grafana", "tempo"):
        assert "profiles" not in services[always_on]
    for demo in ("emulator", "traffic"):
        assert services[demo]["profiles"] == ["demo"]
    assert services["proxy"]["build"] == "."
    assert services["emulator"]["command"] == ["emulator", "--listen", "0.0.0.0:8081"]
    assert "http://emulator:8081" in services["proxy"]["environment"]["ASSISTANTS_AUDIT_UPSTREAM"]
    assert "demo --traffic-only --base-url http://proxy:8080/v1" in services["traffic"]["command"][0]


def test_everything_mounted_or_built_exists() -> None:
    services = compose()["services"]
    checked = 0
    for name, service in services.items():
        for source, _ in bind_mounts(service):
            assert (ROOT / source).exists(), f"{name} mounts missing {source}"
            checked += 1
        if "build" in service:
            context = service["build"] if isinstance(service["build"], str) else service["build"]["context"]
            assert (ROOT / context / "Dockerfile").is_file(), name
    assert checked >= 4
    named = {v.split(":")[0] for s in services.values() for v in s.get("volumes", []) if not v.startswith((".", "/"))}
    assert named <= set(compose()["volumes"])


def test_prometheus_scrapes_the_proxy_admin_port_and_loads_its_rules() -> None:
    services = compose()["services"]
    prometheus = services["prometheus"]
    mounts = dict(bind_mounts(prometheus))
    assert mounts["./prometheus"] == "/etc/prometheus"
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    config = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text())
    target = config["scrape_configs"][0]["static_configs"][0]["targets"][0]
    host, port = target.split(":")
    assert host == "proxy"
    assert services["proxy"]["environment"]["ASSISTANTS_AUDIT_ADMIN_LISTEN"] == f"0.0.0.0:{port}"
    for rule_file in config["rule_files"]:
        assert (ROOT / "prometheus" / rule_file).is_file()


def test_grafana_provisioning_matches_the_mounts() -> None:
    grafana = compose()["services"]["grafana"]
    mounts = dict(bind_mounts(grafana))
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    provider = yaml.safe_load((ROOT / "grafana" / "provisioning" / "dashboards" / "dashboards.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == mounts["./dashboards/json"]
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(mounts["./dashboards/json"] + "/")
    assert (ROOT / "dashboards" / "json" / home.rsplit("/", 1)[1]).is_file()


def test_datasource_uids_used_by_dashboards_are_provisioned() -> None:
    provisioned = provisioned_datasources()
    assert provisioned[PROMETHEUS_UID]["type"] == "prometheus"
    assert provisioned[TEMPO_UID]["type"] == "tempo"
    assert provisioned[PROMETHEUS_UID]["url"] == "http://prometheus:9090"

    referenced: set[str] = set()
    for name, board in committed_dashboards().items():
        variable = next(v for v in board["templating"]["list"] if v["name"] == "datasource")
        referenced.add(variable["current"]["value"])
        for panel in all_panels(board):
            refs = [panel.get("datasource")] + [t.get("datasource") for t in panel.get("targets", [])]
            for ref in filter(None, refs):
                if ref["uid"] != "${datasource}":
                    referenced.add(ref["uid"])
            links = panel.get("links", []) + panel.get("fieldConfig", {}).get("defaults", {}).get("links", [])
            for link in links:
                panes = json.loads(urllib.parse.unquote(link["url"].split("panes=", 1)[1]))
                for pane in panes.values():
                    referenced.add(pane["datasource"])
                    referenced.update(q["datasource"]["uid"] for q in pane["queries"])
    assert referenced == {PROMETHEUS_UID, TEMPO_UID}
    assert referenced <= set(provisioned)


def test_tracing_path_proxy_to_tempo_to_grafana() -> None:
    services = compose()["services"]
    endpoint = services["proxy"]["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"]
    tempo = yaml.safe_load((ROOT / "tempo" / "tempo.yml").read_text())
    otlp_http = tempo["distributor"]["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
    assert endpoint == f"http://tempo:{otlp_http.rsplit(':', 1)[1]}"
    assert provisioned_datasources()[TEMPO_UID]["url"] == f"http://tempo:{tempo['server']['http_listen_port']}"
    assert dict(bind_mounts(services["tempo"]))["./tempo/tempo.yml"] in " ".join(services["tempo"]["command"])


def test_dockerfile_installs_the_project_on_python_311_slim() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", dockerfile, re.M)
    assert re.search(r"^RUN pip install \.", dockerfile, re.M)
    packages = ["proxy", "emulator", "analytics", "dashboards", "bench"]
    for package in packages:
        assert f"COPY {package} ./{package}" in dockerfile
    assert 'ENTRYPOINT ["assistants-audit"]' in dockerfile
    for copied in re.findall(r"^COPY (\S+) ", dockerfile, re.M):
        assert (ROOT / copied).exists(), copied
