"""Contract: the capability table, row by row (docs/providers.md, "Capability table"), and the adapters
sending our id exactly where the table says the provider keeps it."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from libs.providers import (
    EvolutionProvider,
    LookupMethod,
    MediaKind,
    ProviderProfile,
    SendAudioRequest,
    SendMediaRequest,
    SendReactionRequest,
    SendTextRequest,
    TimelockSurface,
    TurboZapProvider,
    WahaProvider,
    WuzapiProvider,
    capabilities_of,
)
from libs.providers.base import HttpProvider
from libs.seedwork.shared_kernel import MessageType, Provider, ProviderEngine
from tests.contract.providers.stub import ProviderStub

TEXT, MEDIA, AUDIO, REACTION = MessageType.TEXT, MessageType.MEDIA, MessageType.AUDIO, MessageType.REACTION
SYNC, ASYNC, WRAPPED = TimelockSurface.SYNC_ERROR, TimelockSurface.ASYNC_ACK, TimelockSurface.WRAPPED_500
NOWEB, GOWS, WEBJS = ProviderEngine.NOWEB, ProviderEngine.GOWS, ProviderEngine.WEBJS
UNKNOWN_ENGINE = ProviderEngine.UNSPECIFIED


@pytest.mark.parametrize(
    ("profile", "ids", "lookup", "proof", "timelock"),
    [
        # Evolution 2.3.6: no client id, findMessages by chat + fromMe + time, 463 as an ERROR ack.
        (ProviderProfile(Provider.EVOLUTION, "2.3.6"), set(), LookupMethod.BY_CHAT_AND_TIME, False, {ASYNC}),
        (ProviderProfile(Provider.EVOLUTION), set(), LookupMethod.BY_CHAT_AND_TIME, False, {ASYNC}),
        # WAHA NOWEB/GOWS from 2026.4.3 keep sendText's id and search every chat.
        (ProviderProfile(Provider.WAHA, "2026.4.3", NOWEB), {TEXT}, LookupMethod.BY_ID, True, {ASYNC}),
        (ProviderProfile(Provider.WAHA, "2026.8.1", GOWS), {TEXT}, LookupMethod.BY_ID, True, {SYNC}),
        (ProviderProfile(Provider.WAHA, "v2026.5.0-plus", GOWS), {TEXT}, LookupMethod.BY_ID, True, {SYNC}),
        # Older NOWEB/GOWS ignore our id and file chats under @lid: a miss proves nothing.
        (
            ProviderProfile(Provider.WAHA, "2026.4.2", NOWEB),
            set(),
            LookupMethod.BY_CHAT_AND_ID,
            False,
            {ASYNC},
        ),
        (
            ProviderProfile(Provider.WAHA, "2024.10.8", GOWS),
            set(),
            LookupMethod.BY_CHAT_AND_ID,
            False,
            {SYNC},
        ),
        (ProviderProfile(Provider.WAHA, "", GOWS), set(), LookupMethod.BY_CHAT_AND_ID, False, {SYNC}),
        (ProviderProfile(Provider.WAHA, "latest", NOWEB), set(), LookupMethod.BY_CHAT_AND_ID, False, {ASYNC}),
        # WEBJS ignores the id on every version; an unknown engine gets the most cautious row.
        (
            ProviderProfile(Provider.WAHA, "2026.8.1", WEBJS),
            set(),
            LookupMethod.BY_CHAT_AND_ID,
            False,
            {SYNC, ASYNC},
        ),
        (
            ProviderProfile(Provider.WAHA, "2026.8.1", UNKNOWN_ENGINE),
            set(),
            LookupMethod.BY_CHAT_AND_ID,
            False,
            {SYNC, ASYNC},
        ),
        # wuzapi keeps `Id` on text, media and audio (a reaction's Id is its target); no lookup.
        (ProviderProfile(Provider.WUZAPI), {TEXT, MEDIA, AUDIO}, LookupMethod.NONE, False, {SYNC}),
        # TurboZap: nothing to reconcile with, and a 463 hides in a generic 500.
        (ProviderProfile(Provider.TURBOZAP), set(), LookupMethod.NONE, False, {WRAPPED}),
        # The simulator speaks WAHA, keeps our id on every type and proves a miss.
        (
            ProviderProfile(Provider.SIMULATOR),
            {TEXT, MEDIA, AUDIO, REACTION},
            LookupMethod.BY_ID,
            True,
            {SYNC, ASYNC},
        ),
    ],
)
def test_capability_rows(
    profile: ProviderProfile,
    ids: set[MessageType],
    lookup: LookupMethod,
    proof: bool,
    timelock: set[TimelockSurface],
) -> None:
    row = capabilities_of(profile)
    assert set(row.client_id_types) == ids
    assert row.lookup is lookup
    assert row.miss_proves_absence is proof
    assert set(row.timelock) == timelock
    assert row.can_look_up is (lookup is not LookupMethod.NONE)
    for message_type in MessageType:
        assert row.keeps_client_id(message_type) is (message_type in ids)


@pytest.mark.parametrize("provider", list(Provider))
@pytest.mark.parametrize("engine", list(ProviderEngine))
@pytest.mark.parametrize("version", ["", "garbage", "2024.1.1", "2026.4.3", "2099.1.1"])
def test_a_miss_is_proof_only_where_our_id_is_kept(
    provider: Provider, engine: ProviderEngine, version: str
) -> None:
    row = capabilities_of(ProviderProfile(provider, version, engine))
    if row.miss_proves_absence:
        assert row.client_id_types and row.lookup is LookupMethod.BY_ID


# --- which sends carry our id ----------------------------------------------------------------------------

CLIENT_ID = "3EB0C0FFEE0011223344"
PHONE = "5511987650000"
# Answers in each provider's shape, enough for the adapter to read an id (see each provider's contract
# file for the sources).
ANSWERS: dict[type[HttpProvider], dict[str, Any]] = {
    WahaProvider: {"id": f"true_{PHONE}@c.us_{CLIENT_ID}"},
    WuzapiProvider: {
        "code": 200,
        "data": {"Details": "Sent", "Id": CLIENT_ID, "Timestamp": 1},
        "success": True,
    },
    EvolutionProvider: {"key": {"remoteJid": f"{PHONE}@s.whatsapp.net", "fromMe": True, "id": "BAE5F2A1"}},
    TurboZapProvider: {"success": True, "data": {"message_id": "3EB0TZ01"}},
}
ID_FIELD = {WahaProvider: "id", WuzapiProvider: "Id"}


def _requests() -> dict[MessageType, Any]:
    common = {"instance_ref": "sales-03", "recipient": PHONE, "client_message_id": CLIENT_ID}
    return {
        TEXT: SendTextRequest(text="Olá", **common),
        MEDIA: SendMediaRequest(
            kind=MediaKind.IMAGE, mimetype="image/png", data_base64="iVBORw0KGgo=", **common
        ),
        AUDIO: SendAudioRequest(data_base64="T2dnUw==", **common),
        REACTION: SendReactionRequest(message_id="3EB0AAAA", emoji="👍", target_from_me=False, **common),
    }


async def _send(provider: HttpProvider, message_type: MessageType) -> None:
    request = _requests()[message_type]
    if isinstance(request, SendTextRequest):
        await provider.send_text(request)
    elif isinstance(request, SendMediaRequest):
        await provider.send_media(request)
    elif isinstance(request, SendAudioRequest):
        await provider.send_audio(request)
    else:
        await provider.send_reaction(request)


@pytest.mark.parametrize("adapter", [WahaProvider, WuzapiProvider, EvolutionProvider, TurboZapProvider])
@pytest.mark.parametrize("message_type", [TEXT, MEDIA, AUDIO, REACTION])
async def test_our_id_travels_only_where_the_provider_can_keep_it(
    stub: ProviderStub,
    http: aiohttp.ClientSession,
    adapter: type[HttpProvider],
    message_type: MessageType,
) -> None:
    stub.reply(200, ANSWERS[adapter])
    await _send(adapter(base_url=stub.base_url, api_key="k", session=http), message_type)
    body = stub.last.json
    if adapter is WuzapiProvider and message_type is REACTION:
        assert body["Id"] == "3EB0AAAA"  # wuzapi's reaction `Id` names the target, never ours
    elif adapter in ID_FIELD:
        # WAHA: harmless where the engine ignores it, kept where the table says so (and by the simulator).
        assert body[ID_FIELD[adapter]] == CLIENT_ID
    else:
        assert CLIENT_ID not in str(body)  # Evolution 2.3.6 and TurboZap have no such field
