"""`python -m qrpay_tools.deploy`: writes deploy/kubernetes/ from one topology description,
and the systemd units' CPU priority drop-ins from the service registry.

A Deployment, a Service and a PodDisruptionBudget per qrpay service, a Deployment and a
PodDisruptionBudget for the payments-eda queue worker, HorizontalPodAutoscalers for the two
services that take the load (iiko-integration: every POS; payments-eda: every payer), the
migration Job (`qrpay db upgrade`), the config ConfigMap (deploy/config/qrpay.yaml with the
cluster's Service names) and an example of the secdist Secret. tests/deploy checks that the
files are what this writes and that Kubernetes accepts them.

CPU priority (systemd): `qrpay-serve@<service>.service.d/priority.conf` (and the worker's)
for every service the registry niced (``ServiceSpec.nice``): ``Nice=`` for processes that
share a cgroup, ``CPUWeight=`` of the same ratio for the units' own cgroups (the kernel
weighs nice 10 at 110 of nice 0's 1,024; CPUWeight's default, 100, is nice 0's). Kubernetes
gets none: each pod's CPU request is its weight on its node.

Stop timing: Kubernetes sends SIGTERM while endpoints may still route to the pod, so the pod
first sleeps PRE_STOP_SECONDS (preStop), then drains like under supervisord or systemd
(qrpay_tools.cluster.supervised.DRAIN); terminationGracePeriodSeconds covers all of it.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from qrpay.runner.registry import BY_NAME, SERVICE_NAMES
from qrpay_tools.cluster.supervised import DRAIN, STOP_MARGIN

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "deploy" / "kubernetes"
SYSTEMD = REPO / "deploy" / "systemd"
CONFIG = REPO / "deploy" / "config" / "qrpay.yaml"
SECDIST_EXAMPLE = REPO / "deploy" / "config" / "secdist.example.yaml"
# The Kubernetes version the manifests are written for and checked against.
KUBERNETES_VERSION = "1.34.0"
NAMESPACE = "qrpay"
IMAGE = "registry.example.com/qrpay:0.1.0"  # built from this repository: deploy/README.md
PORT = 8080
PRE_STOP_SECONDS = 5
WORKER = "payments-eda"
WORKER_CONCURRENCY = 16
PART_OF = "qrpay"


@dataclass(frozen=True)
class Service:
    name: str
    replicas: int = 2
    cpu: str = "250m"
    memory: str = "256Mi"
    memory_limit: str = "512Mi"
    max_replicas: int = 0  # 0: no autoscaler


# The sizes that differ from the defaults; every service of the registry is deployed.
SIZES = {
    "iiko-integration": Service("iiko-integration", cpu="500m", max_replicas=10),
    "payments-eda": Service("payments-eda", cpu="500m", max_replicas=10),
    "eda": Service("eda", cpu="500m"),
}
SERVICES = tuple(SIZES.get(name, Service(name)) for name in SERVICE_NAMES)


def labels(component: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": component, "app.kubernetes.io/part-of": PART_OF}


def metadata(name: str, component: str) -> dict[str, Any]:
    return {"name": name, "namespace": NAMESPACE, "labels": labels(component)}


def resource(
    api_version: str, kind: str, name: str, body: dict[str, Any], component: str | None = None
) -> dict[str, Any]:
    """A manifest; its component (the ``app.kubernetes.io/name`` label) is its name unless given."""
    meta = metadata(name, component or name)
    return {"apiVersion": api_version, "kind": kind, "metadata": meta, **body}


ENVIRONMENT = {
    # Every production check but the sandbox gateway's: the only gateway qrpay has.
    # `production` once a real acquirer's adapter is configured.
    "QRPAY_ENVIRONMENT": "staging",
    "QRPAY_CONFIG": "/etc/qrpay/config/qrpay.yaml",
    "QRPAY_SECDIST": "/etc/qrpay/secdist/secdist.yaml",
    "QRPAY_DATA_DIR": "/var/lib/qrpay",
    "QRPAY_HOST": "0.0.0.0",
    "QRPAY_LOG_FORMAT": "json",
}


def environment() -> list[dict[str, str]]:
    return [{"name": name, "value": value} for name, value in ENVIRONMENT.items()]


def secdist_secret(holder: str) -> str:
    """The Secret of one service's secdist (`qrpay secrets generate` writes one per service:
    a process holds its own private ticket key only, and production refuses any other);
    ``migrate`` holds the database URLs and no ticket key."""
    return f"qrpay-secdist-{holder}"


def volumes(holder: str) -> list[dict[str, Any]]:
    # A directory mount (no subPath): a changed ConfigMap reaches the file, and qrpay
    # re-reads it without a restart.
    return [
        {"name": "config", "configMap": {"name": "qrpay-config"}},
        {"name": "secdist", "secret": {"secretName": secdist_secret(holder), "defaultMode": 0o400}},
        {"name": "data", "emptyDir": {}},
        {"name": "tmp", "emptyDir": {}},  # the root filesystem is read-only
    ]


def mounts() -> list[dict[str, Any]]:
    return [
        {"name": "config", "mountPath": "/etc/qrpay/config", "readOnly": True},
        {"name": "secdist", "mountPath": "/etc/qrpay/secdist", "readOnly": True},
        {"name": "data", "mountPath": "/var/lib/qrpay"},
        {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 - the pod's own emptyDir
    ]


def pod_security() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "fsGroup": 10001,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


def container(name: str, args: list[str], resources: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "image": IMAGE,
        "args": args,
        "env": environment(),
        "volumeMounts": mounts(),
        "resources": resources,
        "securityContext": container_security(),
    }


def resources(cpu: str, memory: str, memory_limit: str) -> dict[str, Any]:
    # No CPU limit: throttling a Python event loop stalls every request it holds; the
    # request reserves the share, the memory limit bounds a leak.
    return {"requests": {"cpu": cpu, "memory": memory}, "limits": {"memory": memory_limit}}


def http_probe(path: str, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def pod_template(component: str, box: dict[str, Any], grace: int, holder: str) -> dict[str, Any]:
    return {
        "metadata": {
            "labels": labels(component),
            "annotations": {
                "prometheus.io/scrape": "true" if "ports" in box else "false",
                "prometheus.io/port": str(box.get("ports", [{}])[0].get("containerPort", PORT)),
                "prometheus.io/path": "/metrics",
            },
        },
        "spec": {
            "terminationGracePeriodSeconds": grace,
            "securityContext": pod_security(),
            "containers": [box],
            "volumes": volumes(holder),
        },
    }


def deployment(name: str, component: str, replicas: int, pod: dict[str, Any]) -> dict[str, Any]:
    return resource(
        "apps/v1",
        "Deployment",
        name,
        {
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": labels(component)},
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
                },
                "template": pod,
            },
        },
        component=component,
    )


def service_deployment(service: Service) -> dict[str, Any]:
    box = container(
        service.name,
        ["serve", service.name, "--port", str(PORT)],
        resources(service.cpu, service.memory, service.memory_limit),
    )
    box["ports"] = [{"name": "http", "containerPort": PORT}]
    box["startupProbe"] = http_probe("/ping", 2, 30)
    box["livenessProbe"] = http_probe("/ping", 10, 3)
    box["readinessProbe"] = http_probe("/ready", 5, 2)
    box["lifecycle"] = {"preStop": {"sleep": {"seconds": PRE_STOP_SECONDS}}}
    grace = PRE_STOP_SECONDS + DRAIN["serve"] + STOP_MARGIN
    return deployment(
        service.name,
        service.name,
        service.replicas,
        pod_template(service.name, box, grace, service.name),
    )


WORKER_METRICS_PORT = 9182


def worker_deployment() -> dict[str, Any]:
    name = f"worker-{WORKER}"
    box = container(
        name,
        [
            "worker",
            WORKER,
            "--concurrency",
            str(WORKER_CONCURRENCY),
            # The payment outcomes (problem orders, overdue payments, paid by QR) are counted
            # in the worker: Prometheus scrapes it here (deploy/prometheus).
            "--metrics-host",
            "0.0.0.0",  # the pod's own address, for the scrape
            "--metrics-port",
            str(WORKER_METRICS_PORT),
        ],
        resources("250m", "256Mi", "512Mi"),
    )
    box["ports"] = [{"name": "metrics", "containerPort": WORKER_METRICS_PORT}]
    # No HTTP: Kubernetes restarts it when it exits; it takes no traffic to stop first.
    grace = DRAIN["worker"] + STOP_MARGIN
    return deployment(name, name, 2, pod_template(name, box, grace, WORKER))


def cluster_service(service: Service) -> dict[str, Any]:
    return resource(
        "v1",
        "Service",
        service.name,
        {
            "spec": {
                "selector": labels(service.name),
                "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
            },
        },
    )


def disruption_budget(component: str) -> dict[str, Any]:
    return resource(
        "policy/v1",
        "PodDisruptionBudget",
        component,
        {
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": labels(component)}},
        },
    )


def autoscaler(service: Service) -> dict[str, Any]:
    return resource(
        "autoscaling/v2",
        "HorizontalPodAutoscaler",
        service.name,
        {
            "spec": {
                "scaleTargetRef": {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "name": service.name,
                },
                "minReplicas": service.replicas,
                "maxReplicas": service.max_replicas,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {"type": "Utilization", "averageUtilization": 70},
                        },
                    }
                ],
                # Down slowly: a scale-down drains pods, and load comes back in bursts.
                "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}},
            },
        },
    )


def migration_job() -> dict[str, Any]:
    box = container("migrate", ["db", "upgrade"], resources("250m", "256Mi", "512Mi"))
    return resource(
        "batch/v1",
        "Job",
        "qrpay-migrate",
        {
            "spec": {
                "backoffLimit": 3,
                "activeDeadlineSeconds": 600,
                "ttlSecondsAfterFinished": 86400,
                "template": {
                    "metadata": {"labels": labels("qrpay-migrate")},
                    "spec": {
                        "restartPolicy": "OnFailure",
                        "securityContext": pod_security(),
                        "containers": [box],
                        "volumes": volumes("migrate"),
                    },
                },
            },
        },
    )


def config_map() -> dict[str, Any]:
    base = CONFIG.read_text()
    services = "".join(
        f'  {s.name}: {{base_url: "http://{s.name}.{NAMESPACE}.svc"}}\n' for s in SERVICES
    )
    text = (
        base + "\n# Kubernetes: the services call each other through their Services.\n"
        "services:\n" + services
    )
    return resource(
        "v1",
        "ConfigMap",
        "qrpay-config",
        {
            "data": {"qrpay.yaml": text},
        },
        component="qrpay",
    )


def secret_example() -> dict[str, Any]:
    return resource(
        "v1",
        "Secret",
        secdist_secret(WORKER),
        {
            "type": "Opaque",
            "stringData": {"secdist.yaml": SECDIST_EXAMPLE.read_text()},
        },
        component="qrpay",
    )


def namespace() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": NAMESPACE, "labels": {"app.kubernetes.io/part-of": PART_OF}},
    }


def manifests() -> dict[str, list[dict[str, Any]]]:
    """File name -> its resources. secret.example.yaml is not in the kustomization: the
    operator makes the real Secret (deploy/README.md)."""
    files: dict[str, list[dict[str, Any]]] = {
        "namespace.yaml": [namespace()],
        "configmap.yaml": [config_map()],
        "secret.example.yaml": [secret_example()],
        "migrate-job.yaml": [migration_job()],
    }
    for service in SERVICES:
        found = [service_deployment(service), cluster_service(service)]
        found.append(disruption_budget(service.name))
        if service.max_replicas:
            found.append(autoscaler(service))
        files[f"{service.name}.yaml"] = found
    worker = f"worker-{WORKER}"
    files[f"{worker}.yaml"] = [worker_deployment(), disruption_budget(worker)]
    return files


def kustomization(files: list[str]) -> dict[str, Any]:
    applied = [name for name in files if name not in ("secret.example.yaml", "migrate-job.yaml")]
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": NAMESPACE,
        "resources": applied,
    }


HEADER = (
    "# Written by `python -m qrpay_tools.deploy` (`make deploy-manifests`): edit that, not this.\n"
)


def rendered() -> dict[str, str]:
    files = manifests()
    out = {
        name: HEADER + yaml.safe_dump_all(resources, sort_keys=False, allow_unicode=True)
        for name, resources in files.items()
    }
    out["kustomization.yaml"] = HEADER + yaml.safe_dump(kustomization(list(files)), sort_keys=False)
    return out


# -- systemd -----------------------------------------------------------------------------

PRIORITY_DROP_IN = "priority.conf"


def cpu_weight(nice: int) -> int:
    """systemd's CPUWeight= (nice 0: 100) with the ratio the kernel gives ``nice``: each
    level is 1.25 times less weight."""
    return max(1, round(100 / 1.25**nice))


def priority_drop_in(nice: int) -> str:
    return (
        "# Written by `python -m qrpay_tools.deploy` (`make deploy-manifests`) from the service\n"
        "# registry (qrpay.runner.registry, ServiceSpec.nice): edit that, not this. The payment\n"
        "# path yields the CPU to the POS path (iiko-integration, eda) on a saturated host.\n"
        "# A second instance of the service needs the same drop-in under its own name.\n"
        "[Service]\n"
        f"Nice={nice}\n"
        f"CPUWeight={cpu_weight(nice)}\n"
    )


def systemd_drop_ins() -> dict[str, str]:
    """Path under deploy/systemd -> text: the priority of each niced service's unit, and of
    the worker's, for the example instances (named by service, as in serve/)."""
    units = [(f"qrpay-serve@{name}.service", name) for name in SERVICE_NAMES]
    units.append((f"qrpay-worker@{WORKER}.service", WORKER))
    return {
        f"{unit}.d/{PRIORITY_DROP_IN}": priority_drop_in(BY_NAME[service].nice)
        for unit, service in units
        if BY_NAME[service].nice
    }


def write(out: Path, systemd: Path) -> int:
    """Writes both sets, removing what an earlier run wrote and this one does not; returns
    the number of files written."""
    out.mkdir(parents=True, exist_ok=True)
    for stale in [*out.glob("*.yaml"), *systemd.glob(f"*.service.d/{PRIORITY_DROP_IN}")]:
        stale.unlink()
    for directory in systemd.glob("*.service.d"):
        if not any(directory.iterdir()):
            directory.rmdir()
    files = {out / name: text for name, text in rendered().items()}
    files |= {systemd / name: text for name, text in systemd_drop_ins().items()}
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return len(files)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qrpay_tools.deploy", description=__doc__)
    parser.add_argument("--out", type=Path, default=OUT, help="the Kubernetes manifests")
    parser.add_argument("--systemd", type=Path, default=SYSTEMD, help="the units' drop-ins")
    args = parser.parse_args(argv)
    written = write(args.out, args.systemd)
    print(f"wrote {written} files to {args.out} and {args.systemd}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
