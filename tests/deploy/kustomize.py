"""Rendering deploy/kubernetes's overlays as `kubectl kustomize` does, and reading the objects it gives.

kubectl (with kustomize v5) comes from PATH or $KUBECTL; without it the tests that render are skipped
locally and fail under CI=true.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import ROOT, unavailable

KUBERNETES = ROOT / "deploy" / "kubernetes"
OVERLAYS = ("dev", "production")

Object = dict[str, Any]


def kubectl() -> str:
    found = os.environ.get("KUBECTL") or shutil.which("kubectl")
    if not found or not Path(found).is_file():
        unavailable("kubectl", FileNotFoundError("not in $KUBECTL or PATH (kubectl with kustomize v5)"))
    assert found is not None
    return found


def render(directory: Path) -> list[Object]:
    """The objects `kubectl kustomize <directory>` renders; a failure to render fails the test."""
    done = subprocess.run(
        [kubectl(), "kustomize", str(directory)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, f"kubectl kustomize {directory} failed:\n{done.stderr}"
    return [document for document in yaml.safe_load_all(done.stdout) if document]


@dataclass(frozen=True)
class Rendered:
    overlay: str
    objects: list[Object]

    def of_kind(self, kind: str) -> list[Object]:
        return [o for o in self.objects if o["kind"] == kind]

    def named(self, kind: str, name: str) -> Object:
        found = [o for o in self.of_kind(kind) if o["metadata"]["name"] == name]
        assert len(found) == 1, f"{self.overlay}: expected one {kind} {name}, found {len(found)}"
        return found[0]

    @property
    def workloads(self) -> list[Object]:
        """Deployments and Jobs: everything that runs a pod."""
        return self.of_kind("Deployment") + self.of_kind("Job")

    @property
    def namespace(self) -> str:
        (namespace,) = self.of_kind("Namespace")
        name: str = namespace["metadata"]["name"]
        return name


def pod_spec(workload: Object) -> Object:
    spec: Object = workload["spec"]["template"]["spec"]
    return spec


def pod_labels(workload: Object) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"]["labels"]
    return labels


def containers(workload: Object) -> Iterator[Object]:
    """Every container of a workload's pods, init containers included."""
    spec = pod_spec(workload)
    yield from spec.get("initContainers", [])
    yield from spec["containers"]


def selects(selector: Object | None, labels: dict[str, str]) -> bool:
    """A Kubernetes label selector (matchLabels and matchExpressions) against labels; {} selects all."""
    if selector is None:
        return False
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        matched = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[operator]
        if not matched:
            return False
    return True
