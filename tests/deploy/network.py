"""Whether the rendered NetworkPolicies let one pod reach another: Kubernetes's rules, for the peers these
manifests use (pod and namespace selectors; ipBlocks, whose addresses a test cannot know, match nothing)."""

from __future__ import annotations

from dataclasses import dataclass, field

from tests.deploy.kustomize import Object, selects


@dataclass(frozen=True)
class Pod:
    namespace: str
    labels: dict[str, str]
    # Named container ports, so that a policy naming a port ("grpc") is read as Kubernetes reads it.
    ports: dict[str, int]
    # Labels of its namespace besides the name Kubernetes gives every namespace.
    more_namespace_labels: dict[str, str] = field(default_factory=dict)

    @property
    def namespace_labels(self) -> dict[str, str]:
        return {"kubernetes.io/metadata.name": self.namespace, **self.more_namespace_labels}


def _peer_matches(peer: Object, policy_namespace: str, pod: Pod) -> bool:
    if "ipBlock" in peer:
        return False
    if "namespaceSelector" in peer:
        if not selects(peer["namespaceSelector"], pod.namespace_labels):
            return False
    elif pod.namespace != policy_namespace:
        return False
    return "podSelector" not in peer or selects(peer["podSelector"], pod.labels)


def _port_matches(rule: Object, port: int, protocol: str, target: Pod) -> bool:
    if "ports" not in rule:
        return True
    for allowed in rule["ports"]:
        value = allowed.get("port")
        number = target.ports.get(value) if isinstance(value, str) else value
        if allowed.get("protocol", "TCP") == protocol and (value is None or number == port):
            return True
    return False


def _allowed_one_way(
    policies: list[Object], direction: str, subject: Pod, peer: Pod, port: int, protocol: str, target: Pod
) -> bool:
    """`direction` (Ingress or Egress) of `subject`'s traffic with `peer` on `target`'s port: allowed when no
    policy isolates the subject that way, or some policy selecting it has a rule matching peer and port."""
    relevant = [
        p
        for p in policies
        if p["metadata"].get("namespace") == subject.namespace
        and selects(p["spec"]["podSelector"], subject.labels)
        and direction in p["spec"].get("policyTypes", ["Ingress"])
    ]
    if not relevant:
        return True
    field, peers = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    for policy in relevant:
        for rule in policy["spec"].get(field, []):
            peer_allowed = peers not in rule or any(
                _peer_matches(p, policy["metadata"]["namespace"], peer) for p in rule[peers]
            )
            if peer_allowed and _port_matches(rule, port, protocol, target):
                return True
    return False


def allowed(policies: list[Object], source: Pod, destination: Pod, port: int, protocol: str = "TCP") -> bool:
    """Both ends must allow it: the source's egress and the destination's ingress."""
    return _allowed_one_way(
        policies, "Egress", source, destination, port, protocol, destination
    ) and _allowed_one_way(policies, "Ingress", destination, source, port, protocol, destination)
