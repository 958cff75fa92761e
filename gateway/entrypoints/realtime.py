"""`/v1/realtime`: ops' live intent changes (WatchIntents) as a WebSocket, for browsers, which cannot speak
gRPC. One WatchIntents call per socket, made with the socket's own key; one JSON text message per change.

The key comes in `Authorization: Bearer <key>`, or, from a browser (which cannot set headers on a
WebSocket), as the subprotocol `bearer.<key>` offered beside `whatlead.v1`; the socket is answered with
`whatlead.v1` only, never the key. Neither is ever logged (uvicorn logs the path and query: no key there).
Query: intent_id, campaign_id, after_position; the organization is the key's own. How a socket ends is its
close code (gateway/README.md, "Realtime"), with a reason of at most 123 bytes naming the position to
resume after.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Collection

from prometheus_client import Counter, Gauge
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket, WebSocketDisconnect

from gateway.application.ports import WatchEnd, WatcherLeft, WatchIntents
from gateway.application.relay_intent_changes import RelayEnded, RelayIntentChanges
from gateway.entrypoints.problems import problem

log = logging.getLogger(__name__)

PATH = "/v1/realtime"
SUBPROTOCOL = "whatlead.v1"
BEARER_SUBPROTOCOL = "bearer."  # + the key: how a browser presents it (the Kubernetes API server's way)
BEARER = "Bearer "
QUERY = ("intent_id", "campaign_id", "after_position")
MAX_REASON_BYTES = 123  # RFC 6455: a close frame's payload is at most 125 bytes, 2 of them the code

# Close codes (gateway/README.md): 4xxx are ours, mirroring HTTP statuses; the others RFC 6455's.
NORMAL, GOING_AWAY, INTERNAL_ERROR, TRY_AGAIN_LATER = 1000, 1001, 1011, 1013
BAD_REQUEST, UNAUTHORIZED, FORBIDDEN, GONE, TOO_SLOW = 4400, 4401, 4403, 4410, 4429
CLOSE_CODES = {
    WatchEnd.INVALID_ARGUMENT: BAD_REQUEST,
    WatchEnd.UNAUTHENTICATED: UNAUTHORIZED,
    WatchEnd.FORBIDDEN: FORBIDDEN,
    WatchEnd.POSITION_TOO_OLD: GONE,
    WatchEnd.TOO_SLOW: TOO_SLOW,
    WatchEnd.UNAVAILABLE: TRY_AGAIN_LATER,
    WatchEnd.ENDED: NORMAL,
    WatchEnd.GOING_AWAY: GOING_AWAY,
    WatchEnd.INTERNAL: INTERNAL_ERROR,
}
# Ends a watcher can resume from: their reason names the position to resume after.
RESUMABLE = {WatchEnd.TOO_SLOW, WatchEnd.UNAVAILABLE, WatchEnd.ENDED, WatchEnd.GOING_AWAY, WatchEnd.INTERNAL}
WATCHER_CLOSED = "client"  # the closes label of a socket its watcher closed (its own codes are not ours)

SOCKETS = Gauge("whatlead_gateway_realtime_sockets", "Open /v1/realtime sockets", multiprocess_mode="livesum")
CLOSES = Counter(
    "whatlead_gateway_realtime_closes_total",
    "/v1/realtime sockets ended, by the close code the gateway sent (403: origin refused before the "
    "upgrade; client: the watcher closed or went away)",
    ["code"],
)
FRAMES = Counter(
    "whatlead_gateway_realtime_frames_total",
    "Frames handed to /v1/realtime sockets (each change, and each stream's starting position)",
)


def close_reason(text: str) -> str:
    """`text` cut to what a close frame carries (123 bytes of UTF-8), never inside a character."""
    encoded = text.encode()
    if len(encoded) <= MAX_REASON_BYTES:
        return text
    return encoded[:MAX_REASON_BYTES].decode(errors="ignore")


def closing(ended: RelayEnded) -> tuple[int, str]:
    """The close code and reason of how a relay ended."""
    code = CLOSE_CODES.get(ended.end, INTERNAL_ERROR)
    if ended.end in RESUMABLE:
        return code, close_reason(f"{ended.end.value}: resume with after_position={ended.resume_after}")
    if ended.end is WatchEnd.POSITION_TOO_OLD:
        return code, "position too old: reconnect without after_position (from now) or with a newer one"
    if ended.end is WatchEnd.UNAUTHENTICATED:
        return code, "unauthenticated: present an API key (Authorization: Bearer <key>, or bearer.<key>)"
    return code, close_reason(f"{ended.end.value}: {ended.detail}" if ended.detail else ended.end.value)


def watch_request(credential: str, query: QueryParams) -> WatchIntents | str:
    """What the query asks for, or why it cannot be asked (field: violation)."""
    for name in query:
        if name not in QUERY:
            return f"{name}: not a parameter (use {', '.join(QUERY)}; the organization is the key's own)"
        if len(query.getlist(name)) > 1:
            return f"{name}: given more than once"
    return WatchIntents(
        credential,
        intent_id=query.get("intent_id", ""),
        campaign_id=query.get("campaign_id", ""),
        after_position=query.get("after_position", ""),
    )


def presented_key(headers: dict[str, str], subprotocols: Collection[str]) -> str | None:
    """The caller's key: the Authorization header's, else the one in a `bearer.<key>` subprotocol."""
    authorization = headers.get("authorization", "")
    if authorization.startswith(BEARER):
        return authorization[len(BEARER) :].strip() or None
    for offered in subprotocols:
        if offered.startswith(BEARER_SUBPROTOCOL) and len(offered) > len(BEARER_SUBPROTOCOL):
            return offered[len(BEARER_SUBPROTOCOL) :]
    return None


class SocketSink:
    """A FrameSink on one WebSocket: `send` returns once the socket took the frame (uvicorn waits while
    the socket's buffer is over its high-water mark, that is, while the watcher does not read)."""

    def __init__(self, websocket: WebSocket) -> None:
        self._websocket = websocket

    async def send(self, text: str) -> None:
        try:
            await self._websocket.send_text(text)
        except (WebSocketDisconnect, OSError, RuntimeError) as gone:
            raise WatcherLeft from gone
        FRAMES.inc()


class RealtimeEndpoint:
    """`relay`: None when the gateway was given no ops address (every socket is then closed 1011).
    `allowed_origins`: the pages whose scripts may connect (empty: any)."""

    def __init__(self, relay: RelayIntentChanges | None, *, allowed_origins: Collection[str] = ()) -> None:
        self._relay = relay
        self._allowed_origins = frozenset(allowed_origins)
        self._interrupts: set[asyncio.Future[WatchEnd]] = set()
        self._sockets: set[asyncio.Task[object]] = set()
        self._going_away = False

    async def connect(self, websocket: WebSocket) -> None:
        origin = websocket.headers.get("origin")
        if self._allowed_origins and origin is not None and origin not in self._allowed_origins:
            # Refused before the upgrade: a foreign page learns nothing of the stream.
            await websocket.send_denial_response(
                problem(403, "this page's origin may not open a live stream here")
            )
            CLOSES.labels("403").inc()
            return
        subprotocols = websocket.scope.get("subprotocols", ())
        await websocket.accept(subprotocol=SUBPROTOCOL if SUBPROTOCOL in subprotocols else None)
        SOCKETS.inc()
        task = asyncio.current_task()
        if task is not None:
            self._sockets.add(task)
        try:
            code, reason = await self._watch(websocket, subprotocols)
        finally:
            SOCKETS.dec()
            if task is not None:
                self._sockets.discard(task)
        CLOSES.labels(str(code) if code else WATCHER_CLOSED).inc()
        if code:
            with contextlib.suppress(WebSocketDisconnect, OSError, RuntimeError):  # gone meanwhile
                await websocket.close(code, reason)

    async def _watch(self, websocket: WebSocket, subprotocols: Collection[str]) -> tuple[int, str]:
        """The close code and reason the socket ends with; code 0 when its watcher left."""
        if self._going_away:
            return GOING_AWAY, "going away: reconnect"
        headers = {name: value for name, value in websocket.headers.items()}
        credential = presented_key(headers, subprotocols)
        if SUBPROTOCOL not in subprotocols and any(p.startswith(BEARER_SUBPROTOCOL) for p in subprotocols):
            return BAD_REQUEST, f"offer the {SUBPROTOCOL} subprotocol with the bearer.<key> one"
        if credential is None:
            return closing(RelayEnded(WatchEnd.UNAUTHENTICATED, ""))
        request = watch_request(credential, websocket.query_params)
        if isinstance(request, str):
            return BAD_REQUEST, close_reason(f"{WatchEnd.INVALID_ARGUMENT.value}: {request}")
        if self._relay is None:
            return INTERNAL_ERROR, "no live stream on this gateway"
        interrupted: asyncio.Future[WatchEnd] = asyncio.get_running_loop().create_future()
        self._interrupts.add(interrupted)
        listener = asyncio.create_task(_until_left(websocket, interrupted), name="realtime-listen")
        try:
            ended = await self._relay(request, SocketSink(websocket), interrupted)
        except Exception:
            log.exception("live intent changes: the relay failed")
            ended = RelayEnded(WatchEnd.INTERNAL, request.after_position)
        finally:
            self._interrupts.discard(interrupted)
            listener.cancel()
        if ended.end is WatchEnd.WATCHER_LEFT:
            return 0, ""
        return closing(ended)

    async def go_away(self, grace: float) -> None:
        """Shutting down: every socket is closed 1001 with its resume position, and new ones at once; waits
        up to `grace` seconds for them to be closed."""
        self._going_away = True
        for interrupted in list(self._interrupts):
            if not interrupted.done():
                interrupted.set_result(WatchEnd.GOING_AWAY)
        if self._sockets:
            await asyncio.wait(list(self._sockets), timeout=grace)


async def _until_left(websocket: WebSocket, interrupted: asyncio.Future[WatchEnd]) -> None:
    """Reads what the watcher sends (nothing is expected: messages are dropped) until it goes away."""
    while (await websocket.receive())["type"] != "websocket.disconnect":
        pass
    if not interrupted.done():
        interrupted.set_result(WatchEnd.WATCHER_LEFT)


async def upgrade_required(_: Request) -> Response:
    """A plain GET of /v1/realtime: it is a WebSocket."""
    return problem(
        426, "/v1/realtime is a WebSocket: connect with Upgrade: websocket", {"Upgrade": "websocket"}
    )
