"""What each provider can do, per version and engine: the facts reconciliation and restriction handling
rest on (docs/providers.md, "Capability table", gives the source of each).

The instance registry records every instance's provider version and engine (`ProviderProfile`); the
Executor reads `capabilities_of(profile)` to decide whether a send carries our own message id, how a lost
answer can be looked up, and whether a lookup's miss proves the message never left. An unknown version or
engine gets the most cautious row of its provider: no promise we cannot prove.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from libs.seedwork.shared_kernel import MessageType, Provider, ProviderEngine


class LookupMethod(StrEnum):
    """How a message can be asked for after a lost answer."""

    NONE = "NONE"  # the provider cannot be asked
    BY_ID = "BY_ID"  # by our id across every chat (WAHA `chats/all/messages/{id}`)
    BY_CHAT_AND_ID = "BY_CHAT_AND_ID"  # by our id in the recipient's chat (may be filed under an @lid chat)
    BY_CHAT_AND_TIME = "BY_CHAT_AND_TIME"  # our messages to the chat since the send (Evolution findMessages)
    HISTORY = "HISTORY"  # the chat's stored history (wuzapi, where its history is on)


class TimelockSurface(StrEnum):
    """Where WhatsApp's 463 (reach-out time-lock) shows up."""

    SYNC_ERROR = "SYNC_ERROR"  # in the send's error answer
    ASYNC_ACK = "ASYNC_ACK"  # the send is accepted; a later ERROR ack webhook carries the code
    WRAPPED_500 = "WRAPPED_500"  # a generic 500 that may hide it, or a send that left


@dataclass(frozen=True, slots=True)
class ProviderProfile:
    """What the registry knows of an instance's provider: which one, which release, which engine."""

    provider: Provider
    version: str = ""  # "2026.4.3"; "" unknown
    engine: ProviderEngine = ProviderEngine.UNSPECIFIED


@dataclass(frozen=True, slots=True, kw_only=True)
class Capabilities:
    """One row of the capability table.

    client_id_types: the message types whose sends carry the id we choose (and keep it).
    lookup: how a message can be asked for.
    miss_proves_absence: a lookup that does not find our id proves the message never left (only where the
        provider keeps our id and files it where the lookup searches).
    timelock: where a 463 surfaces.
    """

    client_id_types: frozenset[MessageType]
    lookup: LookupMethod
    miss_proves_absence: bool
    timelock: frozenset[TimelockSurface]

    @property
    def can_look_up(self) -> bool:
        return self.lookup is not LookupMethod.NONE

    def keeps_client_id(self, message_type: MessageType) -> bool:
        return message_type in self.client_id_types


class LookupVerdict(StrEnum):
    FOUND = "FOUND"  # the provider has the message: it left
    ABSENT = "ABSENT"  # proof that it never left: sending again cannot duplicate it
    INCONCLUSIVE = "INCONCLUSIVE"  # not found, but a miss proves nothing here: a person must look


@dataclass(frozen=True, slots=True, kw_only=True)
class LookupRequest:
    """Ask the provider whether a send left. `client_message_id` is None where the send carried none."""

    profile: ProviderProfile
    instance_ref: str
    recipient: str
    message_type: MessageType
    client_message_id: str | None
    sent_after: datetime  # the attempt started no earlier than this


@dataclass(frozen=True, slots=True)
class LookupResult:
    verdict: LookupVerdict
    provider_message_id: str = ""  # FOUND only
    reason: str = ""  # INCONCLUSIVE: a short, log-safe why ("lookup_unsupported", "http_400", "lid_chat")

    @classmethod
    def found(cls, provider_message_id: str) -> LookupResult:
        return cls(LookupVerdict.FOUND, provider_message_id)

    @classmethod
    def absent(cls) -> LookupResult:
        return cls(LookupVerdict.ABSENT)

    @classmethod
    def inconclusive(cls, reason: str) -> LookupResult:
        return cls(LookupVerdict.INCONCLUSIVE, reason=reason)


def capabilities_of(profile: ProviderProfile) -> Capabilities:
    """The capability row for `profile` (see the module docstring and docs/providers.md)."""
    raise NotImplementedError  # filled in with the table and its sources
