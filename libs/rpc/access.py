"""Who may call each RPC, read from its `whatlead.common.v1.access` option (common.proto).

Read once per method from the protobuf descriptors and kept as a `MethodRule`, so a call costs one
comparison. An RPC without the option admits nobody: a new method is closed until its .proto says who
may call it."""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf import descriptor_pool
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor

from libs.seedwork.access import Principal, Role
from whatlead.common.v1 import common_pb2


@dataclass(frozen=True, slots=True)
class MethodRule:
    """`min_role`: the lowest role an organization's key needs (None: no key may call it); `service`:
    the deployment's service credential may call it."""

    min_role: Role | None
    service: bool
    # The request carries `organization_id`: an org key's call is held to its own organization.
    scoped: bool = True

    def admits(self, principal: Principal) -> bool:
        if principal.is_service:
            return self.service
        return self.min_role is not None and principal.role is not None and principal.role >= self.min_role

    def describe(self) -> str:
        """The rule in the words of docs/security.md."""
        callers = [f"{self.min_role.name} or higher"] if self.min_role is not None else []
        if self.service:
            callers.append("service")
        return ", ".join(callers) or "nobody"


NOBODY = MethodRule(min_role=None, service=False)


def method_rule(method: MethodDescriptor) -> MethodRule:
    """The method's rule; NOBODY when the method has no access option (fail closed)."""
    options = method.GetOptions()
    if not options.HasExtension(common_pb2.access):
        return NOBODY
    access = options.Extensions[common_pb2.access]
    return MethodRule(
        min_role=Role(access.min_role) if access.min_role else None,
        service=access.service,
        scoped="organization_id" in method.input_type.fields_by_name,
    )


def has_access_option(method: MethodDescriptor) -> bool:
    return method.GetOptions().HasExtension(common_pb2.access)


def find_service(service_name: str) -> ServiceDescriptor | None:
    """A service of the process's protobuf descriptors (every generated module imported registers its own)."""
    try:
        return descriptor_pool.Default().FindServiceByName(service_name)
    except KeyError:
        return None


def service_rules(service_name: str) -> dict[str, MethodRule]:
    """Every method of a service by its gRPC path (`/package.Service/Method`). A service the process has no
    descriptor of gets none: each of its methods is then refused."""
    service = find_service(service_name)
    if service is None:
        return {}
    return {f"/{service.full_name}/{method.name}": method_rule(method) for method in service.methods}
