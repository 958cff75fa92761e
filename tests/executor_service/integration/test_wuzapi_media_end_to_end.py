"""wuzapi media through the real executor: the approved intents carry URLs, the adapter downloads them
(from a media server of the test's own) and sends them as wuzapi wants them (data URLs; a document with
the octet-stream prefix, its `MimeType` and `FileName`; a voice note as audio/ogg), authenticated with the
instance's own user token. The simulator in wuzapi mode accepts each once."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from libs.provider_simulator import ProviderSimulator, run_simulator
from libs.seedwork.ids import new_id
from libs.testing.jetstream import publish
from libs.testing.waiting import eventually
from tests.executor_service.integration.harness import (
    API_KEY,
    approved,
    instance_registered,
    job_row,
    own_streams,
    projected,
    running,
    settings,
    status_counts,
)
from whatlead.common.v1 import common_pb2

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 4
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n" + b"0" * 2048 + b"\n%%EOF\n"
OGG = b"OggS\x00\x02" + bytes(22) + b"OpusHead" + bytes(512)
FILES = {
    "/media/photo.jpg": (JPEG, "image/jpeg"),
    "/media/contract.pdf": (PDF, "application/pdf"),
    "/media/voice.ogg": (OGG, "audio/ogg"),
}


@pytest.fixture
async def media_server() -> AsyncIterator[str]:
    """Serves the test's files over HTTP, like the storage the intents' URLs point at."""

    async def serve(request: web.Request) -> web.Response:
        found = FILES.get(request.path)
        if found is None:
            raise web.HTTPNotFound()
        body, content_type = found
        return web.Response(body=body, content_type=content_type)

    app = web.Application()
    app.router.add_get("/media/{name}", serve)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def simulator() -> AsyncIterator[ProviderSimulator]:
    async with run_simulator(api_key=API_KEY) as sim:
        yield sim


@pytest.fixture
async def root(jetstream, subject_root) -> AsyncIterator[str]:
    async with own_streams(jetstream, subject_root) as own:
        yield own


async def test_image_document_and_voice_are_sent_once_each_in_wuzapi_s_shapes(
    migrated_database, jetstream, root, simulator, media_server
):
    organization, instance = f"org-{new_id()[-12:]}", new_id()
    session, token = f"wz-{instance[-8:].lower()}", f"tok-{new_id()}"
    simulator.configure_session(session, wuzapi_token=token)  # the wuzapi user of this instance
    config = settings(
        migrated_database("executor_service"),
        root,
        simulator.base_url,
        wuzapi_url=simulator.base_url,
        wuzapi_tokens={session: token},
        probe_interval_seconds=0,
    )
    image = common_pb2.MessagePayload(
        media=common_pb2.MediaPayload(
            media_url=f"{media_server}/media/photo.jpg", mime_type="image/jpeg", caption="our catalogue"
        )
    )
    document = common_pb2.MessagePayload(
        media=common_pb2.MediaPayload(
            media_url=f"{media_server}/media/contract.pdf",
            mime_type="application/pdf",
            caption="the contract",
        )
    )
    voice = common_pb2.MessagePayload(
        audio=common_pb2.AudioPayload(audio_url=f"{media_server}/media/voice.ogg")
    )
    intents = {
        "image": approved(
            organization,
            session=session,
            instance_id=instance,
            phone="5511933330001",
            provider=common_pb2.PROVIDER_WUZAPI,
            message_type=common_pb2.MESSAGE_TYPE_MEDIA,
            payload=image,
        ),
        "document": approved(
            organization,
            session=session,
            instance_id=instance,
            phone="5511933330002",
            provider=common_pb2.PROVIDER_WUZAPI,
            message_type=common_pb2.MESSAGE_TYPE_MEDIA,
            payload=document,
        ),
        "voice": approved(
            organization,
            session=session,
            instance_id=instance,
            phone="5511933330003",
            provider=common_pb2.PROVIDER_WUZAPI,
            message_type=common_pb2.MESSAGE_TYPE_AUDIO,
            payload=voice,
        ),
    }
    async with running(config) as executor:
        await publish(
            jetstream,
            root,
            instance_registered(organization, instance, session=session, provider=common_pb2.PROVIDER_WUZAPI),
        )
        await projected(executor, instance)
        for intent in intents.values():
            await publish(jetstream, root, intent)

        async def all_sent() -> bool:
            return await status_counts(executor, organization) == {"SENT": 3}

        await eventually(all_sent, timeout=20)
        rows = {kind: await job_row(executor, intent.intent_id) for kind, intent in intents.items()}

    entries = {entry.kind: entry for entry in simulator.ledger.entries}
    assert sorted(entries) == ["document", "image", "voice"]
    assert len(simulator.ledger) == 3 and simulator.ledger.duplicates() == {}
    assert {entry.api for entry in entries.values()} == {"wuzapi"}
    assert {entry.session for entry in entries.values()} == {session}  # the instance's token named it
    for kind, row in rows.items():
        # wuzapi keeps our `Id` on media and audio: the job's id is the message's.
        assert row.client_message_id is not None
        assert entries[kind].client_id == row.client_message_id
        assert row.provider_message_id == row.client_message_id
    assert entries["image"].chat_id == "5511933330001@s.whatsapp.net"
    assert entries["image"].details == {"mimetype": "image/jpeg", "bytes": str(len(JPEG))}
    assert entries["document"].details == {
        "mimetype": "application/pdf",
        "filename": "contract.pdf",
        "bytes": str(len(PDF)),
    }
    assert entries["voice"].details == {"mimetype": "audio/ogg; codecs=opus", "bytes": str(len(OGG))}
