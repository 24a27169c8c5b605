"""The shipped Prometheus config and alert rules pass promtool, and the alert unit tests
(prometheus/alerts_test.yml) pass: failure ratio, 429 ratio, cost burn, v1 traffic, idle
stores, spooling and lost records."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from tests.dashboards.helpers import ROOT, require_binary

PROM_DIR = ROOT / "prometheus"


def promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [require_binary("promtool"), *args], cwd=PROM_DIR, capture_output=True, text=True, timeout=60
    )


def test_promtool_check_config() -> None:
    result = promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_check_rules() -> None:
    result = promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_test_rules() -> None:
    result = promtool("test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_test_rules_can_fail(tmp_path) -> None:
    """The unit tests bite: with the failure-ratio threshold raised above the test's 10%, the
    failure-ratio test must fail."""
    rules = (PROM_DIR / "alerts.yml").read_text().replace(
        "assistants_audit:failure_ratio:rate5m > 0.05", "assistants_audit:failure_ratio:rate5m > 0.5"
    )
    assert rules != (PROM_DIR / "alerts.yml").read_text()
    (tmp_path / "alerts.yml").write_text(rules)
    (tmp_path / "alerts_test.yml").write_text((PROM_DIR / "alerts_test.yml").read_text())
    result = subprocess.run(
        [require_binary("promtool"), "test", "rules", "alerts_test.yml"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    assert "AssistantsAuditHighFailureRatio" in result.stdout + result.stderr


def test_every_alert_has_a_runbook_and_the_required_alerts_exist() -> None:
    groups = yaml.safe_load((PROM_DIR / "alerts.yml").read_text())["groups"]
    alerts = {r["alert"]: r for g in groups for r in g["rules"] if "alert" in r}
    for required in (
        "AssistantsAuditHighFailureRatio",
        "AssistantsAuditRateLimited",
        "AssistantsAuditCostBurnOverBudget",
        "AssistantsAuditV1Traffic",
        "AssistantsAuditIdleVectorStoresCost",
        "AssistantsAuditStoreSpooling",
        "AssistantsAuditStoreLosingRecords",
    ):
        assert required in alerts
    for name, rule in alerts.items():
        annotations = rule["annotations"]
        assert annotations["summary"] and annotations["description"], name
        assert len(annotations["runbook"]) > 100, name
        assert rule["labels"]["severity"] in {"info", "warning", "critical"}, name
    tested = (PROM_DIR / "alerts_test.yml").read_text()
    assert "alertname: AssistantsAuditHighFailureRatio" in tested
    assert "alertname: AssistantsAuditV1Traffic" in tested


def test_scrape_config_targets_the_admin_listener() -> None:
    config = yaml.safe_load((PROM_DIR / "prometheus.yml").read_text())
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "assistants-audit")
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == ["proxy:9464"]
    assert config["rule_files"] == ["alerts.yml"]
    # The proxy-down alert watches this job.
    assert f'up{{job="{job["job_name"]}"}} == 0' in (PROM_DIR / "alerts.yml").read_text()


def test_missing_prometheus_fails_under_ci_and_skips_elsewhere(monkeypatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        require_binary("promtool")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        require_binary("prometheus")
