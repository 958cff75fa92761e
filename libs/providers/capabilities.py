"""What each provider can do, per version and engine: the facts reconciliation and restriction handling
rest on (docs/providers.md, "Capability table", gives the source of each).

The instance registry records every instance's provider version and engine (`ProviderProfile`); the
Executor reads `capabilities_of(profile)` to decide whether a send carries our own message id, how a lost
answer can be looked up, and whether a lookup's miss proves the message never left. An unknown version or
engine gets the most cautious row of its provider: no promise we cannot prove.
"""

from __future__ import annotations

import re
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


# --- the table ----------------------------------------------------------------------------------------
#
# Sources (docs/providers.md, "Capability table", repeats them per row):
# [EVO]  EvolutionAPI/evolution-api at tag 2.3.6 (3f6a4735c8b731143431cd43d311ca57040e40a1):
#        src/api/integrations/channel/whatsapp/whatsapp.baileys.service.ts `sendMessageWithTyping` (no
#        message id option; every failure rethrown as BadRequestException), `fetchMessages` (filters
#        key.remoteJid / key.fromMe / messageTimestamp gte+lte, reads the `Message` table that only
#        DATABASE_SAVE_DATA_NEW_MESSAGE fills), `messages.update` handler (status ERROR, no error code);
#        src/api/routes/chat.router.ts `findMessages`.
# [WAHA] devlikeapro/waha: `sendText` takes a pre-generated `id` and `GET /api/{session}/new-message-id`
#        gives one on NOWEB/GOWS from 2026.4.3 (other engines and versions drop the field; third-party
#        clients call both; not checked against WAHA's source, whose public repository stops at 2024.10.8);
#        https://waha.devlike.pro/docs/how-to/chats ("Get message by id" on WEBJS/GOWS/NOWEB, NOWEB only
#        with its store enabled); src/core/engines/noweb/store/NowebInMemoryStore.ts at 55fc6a42 (store
#        off: 400 "Enable NOWEB store ..."); src/core/engines/noweb/session.noweb.core.ts
#        `parseMessageIdSerialized(id, soft)` (a bare id is accepted); chats filed under `@lid` as well
#        as `@c.us` on GOWS (devlikeapro/waha issues on `chats/{chatId}/messages`).
# [WUZ]  asternic/wuzapi at 79ee4cd87a867f3c905574e7a9057b4cb7dbb16c handlers.go: SendMessage,
#        SendImage, SendVideo, SendAudio, SendDocument use `Id` when given (`msgid = t.Id`); React's
#        `Id` names the target; routes.go has no message lookup; a send error is 500 "Error sending
#        message: <whatsmeow error>", whatsmeow send.go `fmt.Errorf("%w %d", ErrServerReturnedError, code)`.
# [TZ]   jonadableite/TurboZap-api at cb1b54bb8978021293c9855850d4cd8cc7203317
#        internal/interface/http/handler/message_handler.go: no client id in any request DTO, no lookup
#        route, every send error answered 500 "Failed to send message|media|audio|reaction".

_NO_IDS: frozenset[MessageType] = frozenset()
# wuzapi keeps `Id` on text, image, video, document and audio; a reaction's `Id` is its target's.
_WUZAPI_IDS = frozenset({MessageType.TEXT, MessageType.MEDIA, MessageType.AUDIO})
# WAHA documents the pre-generated id on `sendText` only; other sends are not relied on.
_WAHA_IDS = frozenset({MessageType.TEXT})
_EVERY_TYPE = frozenset(MessageType)
_WAHA_CLIENT_ID_SINCE = (2026, 4, 3)
_VERSION = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?")

_EVOLUTION = Capabilities(
    client_id_types=_NO_IDS,  # [EVO] 2.3.6 has no message id option (a later release adds one)
    lookup=LookupMethod.BY_CHAT_AND_TIME,  # [EVO] findMessages; empty when message saving is off
    miss_proves_absence=False,
    timelock=frozenset({TimelockSurface.ASYNC_ACK}),  # [EVO] 201, then messages.update ERROR
)
_WUZAPI = Capabilities(
    client_id_types=_WUZAPI_IDS,  # [WUZ]
    lookup=LookupMethod.NONE,  # [WUZ] no lookup in the version checked; later history is opt-in per user
    miss_proves_absence=False,
    timelock=frozenset({TimelockSurface.SYNC_ERROR}),  # [WUZ] 500 "... server returned error 463"
)
_TURBOZAP = Capabilities(
    client_id_types=_NO_IDS,  # [TZ]
    lookup=LookupMethod.NONE,  # [TZ]
    miss_proves_absence=False,
    timelock=frozenset({TimelockSurface.WRAPPED_500}),  # [TZ] the 500 text never names the error
)
# The built-in simulator speaks WAHA, keeps our id on every type and answers `chats/all` lookups from
# its ledger, so a miss there is proof (libs/provider_simulator). Its quirks are exercised by
# registering instances as WAHA with the engine and version to imitate.
_SIMULATOR = Capabilities(
    client_id_types=_EVERY_TYPE,
    lookup=LookupMethod.BY_ID,
    miss_proves_absence=True,
    timelock=frozenset({TimelockSurface.SYNC_ERROR, TimelockSurface.ASYNC_ACK}),
)
_WAHA_SYNC = frozenset({TimelockSurface.SYNC_ERROR})  # GOWS (whatsmeow): 500 "server returned error 463"
_WAHA_ASYNC = frozenset({TimelockSurface.ASYNC_ACK})  # NOWEB (Baileys): 201, then message.ack -1
_WAHA_EITHER = _WAHA_SYNC | _WAHA_ASYNC  # WEBJS or an unknown engine: watch both


def parse_version(version: str) -> tuple[int, int, int] | None:
    """(year, month, patch) of a release such as "2026.4.3" (a "v" prefix or "-plus" tail is fine);
    None when it cannot be read, which callers treat as the oldest release."""
    match = _VERSION.match(version.strip())
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)


def _waha(profile: ProviderProfile) -> Capabilities:
    version = parse_version(profile.version)
    keeps_ids = version is not None and version >= _WAHA_CLIENT_ID_SINCE
    if profile.engine in (ProviderEngine.NOWEB, ProviderEngine.GOWS):
        timelock = _WAHA_ASYNC if profile.engine is ProviderEngine.NOWEB else _WAHA_SYNC
        if keeps_ids:
            # [WAHA] our id kept and searched across every chat (@lid filing included). NOWEB needs its
            # store: without it the lookup answers 400, which the adapter reads as inconclusive.
            return Capabilities(
                client_id_types=_WAHA_IDS,
                lookup=LookupMethod.BY_ID,
                miss_proves_absence=True,
                timelock=timelock,
            )
        return Capabilities(
            client_id_types=_NO_IDS,
            lookup=LookupMethod.BY_CHAT_AND_ID,
            miss_proves_absence=False,
            timelock=timelock,
        )
    # WEBJS ignores the id on every version; an unknown engine gets the same cautious row.
    return Capabilities(
        client_id_types=_NO_IDS,
        lookup=LookupMethod.BY_CHAT_AND_ID,
        miss_proves_absence=False,
        timelock=_WAHA_EITHER,
    )


def capabilities_of(profile: ProviderProfile) -> Capabilities:
    """The capability row for `profile` (see the module docstring and docs/providers.md)."""
    if profile.provider is Provider.WAHA:
        return _waha(profile)
    if profile.provider is Provider.EVOLUTION:
        return _EVOLUTION
    if profile.provider is Provider.WUZAPI:
        return _WUZAPI
    if profile.provider is Provider.TURBOZAP:
        return _TURBOZAP
    return _SIMULATOR
