"""Role (libs.seedwork.access) <-> `whatlead.ops.v1.MemberRole`: ops' messages, and the key directory every
service reads its keys from, carry a key's role as a MemberRole."""

from __future__ import annotations

from libs.seedwork.access import Role
from whatlead.ops.v1 import ops_pb2

# MemberRole numbers OWNER first; Role orders by power. Names match.
_ROLES = {role: ops_pb2.MemberRole.Value(f"MEMBER_ROLE_{role.name}") for role in Role}
_FROM_ROLES: dict[int, Role] = {int(number): role for role, number in _ROLES.items()}


def role_to_proto(role: Role) -> ops_pb2.MemberRole.ValueType:
    return _ROLES[role]


def role_from_proto(number: int) -> Role | None:
    """None for UNSPECIFIED or a number this build does not know."""
    return _FROM_ROLES.get(number)
