"""The caller of the request being handled, as the authorization interceptor found it.

A servicer reads it to record who acted (`Principal.actor`) and, for the few rules that depend on the
caller (a key grants at most its own role), to pass it to its use case. It imports nothing of gRPC, so
any layer may name the type."""

from __future__ import annotations

from contextvars import ContextVar

from libs.seedwork.access import Principal

_current: ContextVar[Principal | None] = ContextVar("whatlead_principal", default=None)


def current_principal() -> Principal:
    """The authenticated caller. Raises when called outside an authenticated request: a servicer that
    needs a caller and has none is a wiring bug, not a refusal to answer."""
    principal = _current.get()
    if principal is None:
        raise RuntimeError("no authenticated caller in this context")
    return principal


def current_actor() -> str:
    """How events and audit entries name the caller of this request ("key:<id>", "service"), or "" when no
    caller is set (the system's own work: workers, consumers, tests driving a use case directly)."""
    principal = _current.get()
    return "" if principal is None else principal.actor


def set_principal(principal: Principal | None) -> object:
    """For the interceptor (and tests driving a servicer directly); returns the token to reset with."""
    return _current.set(principal)


def reset_principal(token: object) -> None:
    _current.reset(token)  # type: ignore[arg-type]
