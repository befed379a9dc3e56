"""deploy/kubernetes/: what `python -m qrpay_tools.deploy` writes, accepted by Kubernetes'
schemas (kubernetes-validate, strict: no unknown field) at the pinned version, and shaped as
deploy/README.md says: probes, budgets, autoscalers, graceful termination."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from qrpay.kernel.settings import Settings
from qrpay.runner.config import check_config, parse_config
from qrpay_tools import deploy
from qrpay_tools.cluster.supervised import DRAIN

FILES = sorted(deploy.OUT.glob("*.yaml"))
RESOURCE_FILES = [path for path in FILES if path.name != "kustomization.yaml"]


def resources() -> list[dict[str, Any]]:
    found = []
    for path in RESOURCE_FILES:
        found += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return found


def of_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {r["metadata"]["name"]: r for r in resources() if r["kind"] == kind}


def test_the_files_are_what_the_generator_writes() -> None:
    written = deploy.rendered()
    assert sorted(written) == [path.name for path in FILES]
    stale = [name for name, text in written.items() if (deploy.OUT / name).read_text() != text]
    assert stale == [], f"run `make deploy-manifests`: {stale} differ from what it writes"


@pytest.mark.parametrize("path", RESOURCE_FILES, ids=lambda path: path.name)
def test_kubernetes_accepts_every_resource(path: Path) -> None:
    for resource in yaml.safe_load_all(path.read_text()):
        kubernetes_validate.validate(resource, deploy.KUBERNETES_VERSION, strict=True)


def test_an_invalid_resource_is_refused() -> None:
    # The check can fail: a misspelt field and a wrong type are caught.
    bad = deploy.service_deployment(deploy.SERVICES[0])
    bad["spec"]["replicaz"] = 2
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, deploy.KUBERNETES_VERSION, strict=True)
    bad = deploy.service_deployment(deploy.SERVICES[0])
    bad["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = "soon"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, deploy.KUBERNETES_VERSION, strict=True)


def test_every_service_has_probes_a_budget_and_time_to_drain() -> None:
    deployments = of_kind("Deployment")
    budgets = of_kind("PodDisruptionBudget")
    assert set(deployments) == {s.name for s in deploy.SERVICES} | {"worker-payments-eda"}
    assert set(budgets) == set(deployments)
    for service in deploy.SERVICES:
        pod = deployments[service.name]["spec"]["template"]["spec"]
        (box,) = pod["containers"]
        assert box["args"][:2] == ["serve", service.name]
        assert box["livenessProbe"]["httpGet"]["path"] == "/ping"
        assert box["readinessProbe"]["httpGet"]["path"] == "/ready"
        assert box["resources"]["requests"]
        assert box["resources"]["limits"]
        pre_stop = box["lifecycle"]["preStop"]["sleep"]["seconds"]
        assert pod["terminationGracePeriodSeconds"] > pre_stop + DRAIN["serve"]
    worker = deployments["worker-payments-eda"]["spec"]["template"]["spec"]
    assert worker["containers"][0]["args"][:2] == ["worker", "payments-eda"]
    assert worker["terminationGracePeriodSeconds"] > DRAIN["worker"]


def test_the_loaded_services_scale_and_the_job_migrates() -> None:
    assert set(of_kind("HorizontalPodAutoscaler")) == {"iiko-integration", "payments-eda"}
    (job,) = of_kind("Job").values()
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["db", "upgrade"]


def test_the_kustomization_applies_everything_but_the_example_secret_and_the_job() -> None:
    kustomization = yaml.safe_load((deploy.OUT / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    assert listed == {p.name for p in FILES} - {
        "kustomization.yaml",
        "secret.example.yaml",
        "migrate-job.yaml",
    }


def test_the_config_map_is_a_production_config_naming_the_cluster_services() -> None:
    (config_map,) = of_kind("ConfigMap").values()
    config = parse_config(yaml.safe_load(config_map["data"]["qrpay.yaml"]))
    check_config(Settings(environment="staging"), config)
    for service in deploy.SERVICES:
        assert config.dependency(service.name).base_url == f"http://{service.name}.qrpay.svc"
