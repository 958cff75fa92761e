"""The table of who may call each RPC of every service, generated from the descriptors.

`python -m libs.rpc.access_table` prints the table docs/security.md carries (a test keeps the two equal)."""

from __future__ import annotations

from google.protobuf.descriptor import ServiceDescriptor

from libs.rpc.access import method_rule
from whatlead.executor.v1 import executor_pb2
from whatlead.gate.v1 import gate_pb2
from whatlead.ops.v1 import ops_pb2
from whatlead.reputation.v1 import reputation_pb2

# Every public gRPC service of WhatLead, in the order the documentation lists them.
SERVICES: tuple[ServiceDescriptor, ...] = (
    gate_pb2.DESCRIPTOR.services_by_name["GateService"],
    executor_pb2.DESCRIPTOR.services_by_name["ExecutorService"],
    reputation_pb2.DESCRIPTOR.services_by_name["ReputationService"],
    ops_pb2.DESCRIPTOR.services_by_name["OpsService"],
)

_HEADER = ("service", "rpc", "organization key (lowest role)", "service credential")


def rows() -> list[tuple[str, str, str, str]]:
    table = []
    for service in SERVICES:
        for method in service.methods:
            rule = method_rule(method)
            role = rule.min_role.name if rule.min_role is not None else "—"
            table.append((service.name, method.name, role, "yes" if rule.service else "—"))
    return table


def markdown() -> str:
    lines = ["| " + " | ".join(_HEADER) + " |", "|" + "---|" * len(_HEADER)]
    lines += ["| " + " | ".join(f"`{c}`" if i < 2 else c for i, c in enumerate(row)) + " |" for row in rows()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
