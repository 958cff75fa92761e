"""Every client call is scoped to one organization (the tenant); this is how a use case insists on it."""

from __future__ import annotations

from libs.seedwork.errors import InvalidArgument


def require_organization(organization_id: str) -> None:
    """InvalidArgument unless the call names an organization: no read or write spans tenants by omission."""
    if not organization_id.strip():
        raise InvalidArgument.of("organization_id", "must not be empty")
