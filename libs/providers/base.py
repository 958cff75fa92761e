"""HTTP plumbing shared by the four adapters: one pooled aiohttp session, JSON calls with timeouts, and
the translation of every failure (status code, body, socket error) into a classified `ProviderError`.

Adapters only say which endpoint gets which body and how their provider's own error bodies read; the
rules below (what is retryable, what is ambiguous) live here once.
"""

from __future__ import annotations

import json
import re
from abc import abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import SimpleNamespace
from typing import Any, ClassVar

import aiohttp
from multidict import CIMultiDict
from opentelemetry.trace import SpanKind
from yarl import URL

from libs import tracing
from libs.logs import redact_text
from libs.providers.port import ErrorOrigin, ProviderError, Restriction, SentMessage, WhatsAppProvider

DEFAULT_TIMEOUT = aiohttp.ClientTimeout(total=30, sock_connect=5)

# A handful of WhatsApp server errors travel inside provider error texts ("server returned error 463").
_WA_ERROR = re.compile(r"(?:returned error|error:?)\s*(\d{3})\b", re.I)
_LONG_DIGITS = re.compile(r"\d{6,}")  # phone numbers and ids: not for logs
_MAX_HINT = 120
_MAX_RETRY_AFTER = 3600.0


# --- session -----------------------------------------------------------------------------------------


class _RequestProgress:
    """Per-request flags set by the session's trace hooks: did the request start, were headers sent?"""

    __slots__ = ("headers_sent", "tracked")

    def __init__(self) -> None:
        self.tracked = False
        self.headers_sent = False


async def _on_request_start(
    session: aiohttp.ClientSession, ctx: SimpleNamespace, params: aiohttp.TraceRequestStartParams
) -> None:
    progress = ctx.trace_request_ctx
    if isinstance(progress, _RequestProgress):
        progress.tracked = True


async def _on_headers_sent(
    session: aiohttp.ClientSession, ctx: SimpleNamespace, params: aiohttp.TraceRequestHeadersSentParams
) -> None:
    progress = ctx.trace_request_ctx
    if isinstance(progress, _RequestProgress):
        progress.headers_sent = True


def send_tracer() -> aiohttp.TraceConfig:
    """Trace hooks that let adapters tell "failed before sending" (safe to retry) from "may have left"."""
    config = aiohttp.TraceConfig()
    config.on_request_start.append(_on_request_start)
    config.on_request_headers_sent.append(_on_headers_sent)
    return config


def create_client_session(
    *,
    timeout: aiohttp.ClientTimeout = DEFAULT_TIMEOUT,
    limit: int = 200,
    limit_per_host: int = 100,
) -> aiohttp.ClientSession:
    """The one HTTP session a process shares across every adapter (call inside a running event loop).

    Connections are pooled per host; `limit` bounds sockets overall. Sessions made elsewhere work too,
    but without `send_tracer()` every timeout is treated as AMBIGUOUS, the safe assumption.
    """
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit_per_host, ttl_dns_cache=300)
    return aiohttp.ClientSession(
        connector=connector, timeout=timeout, trace_configs=[send_tracer()], raise_for_status=False
    )


def as_client_timeout(timeout: aiohttp.ClientTimeout | float | None) -> aiohttp.ClientTimeout | None:
    if timeout is None or isinstance(timeout, aiohttp.ClientTimeout):
        return timeout
    return aiohttp.ClientTimeout(total=float(timeout), sock_connect=min(5.0, float(timeout)))


# --- classification ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HttpFailure:
    """A non-2xx answer: status, parsed JSON body (or None) and the start of the raw text."""

    status: int
    body: Any = None
    text: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    idempotent: bool = False  # a lookup or another call that is harmless to repeat (never AMBIGUOUS)

    @property
    def retry_after(self) -> float | None:
        return parse_retry_after(self.headers.get("Retry-After"))

    def lower_text(self) -> str:
        return self.text.lower()

    def origin(self, provider: str) -> ErrorOrigin:
        """What every error classified from this answer carries: the HTTP status and the provider."""
        return {"status": self.status, "provider": provider}


SpecificRule = Callable[[HttpFailure], ProviderError | None]


@dataclass(frozen=True, slots=True)
class LookupAnswer:
    """What a provider answered to a lookup: the status, the parsed JSON (None for `null`, an empty or
    an unparseable body), the start of the raw text, and whether the body was empty."""

    status: int
    body: Any
    text: str
    empty: bool

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def lower_text(self) -> str:
        return self.text.lower()


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP date), clamped to [0, 1 h]."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return min(max(seconds, 0.0), _MAX_RETRY_AFTER)


def safe_hint(value: object) -> str:
    """A short, log-safe rendering of a provider's error message: no key-like pairs, no long digit runs
    (phone numbers), bounded length."""
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    text = _LONG_DIGITS.sub("…", redact_text(" ".join(text.split())))
    return text if len(text) <= _MAX_HINT else text[: _MAX_HINT - 1] + "…"


def error_message_of(body: Any) -> str:
    """The human message inside the usual error shapes (NestJS, Evolution, wuzapi, TurboZap)."""
    if not isinstance(body, dict):
        return ""
    for path in (
        ("exception", "details"),
        ("exception", "message"),
        ("response", "message"),
        ("error", "message"),
        ("error",),
        ("message",),
    ):
        value: Any = body
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, list):
            value = "; ".join(str(item) for item in value if isinstance(item, str | int | float))
        if isinstance(value, str) and value:
            return value
    return ""


def whatsapp_error_code(failure: HttpFailure) -> int | None:
    """The WhatsApp server error number embedded in the provider's error text, if any."""
    match = _WA_ERROR.search(failure.text)
    return int(match.group(1)) if match else None


def classify_http_failure(
    provider: str, failure: HttpFailure, specific: SpecificRule | None = None
) -> ProviderError:
    """Turn a non-2xx answer into a classified error: the provider's own rules first, then the common ones."""
    if specific is not None:
        error = specific(failure)
        if error is not None:
            return error
    status = failure.status
    hint = safe_hint(error_message_of(failure.body) or failure.text[:200]) if failure.text else ""
    common = failure.origin(provider)
    wa_code = whatsapp_error_code(failure)
    if wa_code == 463:
        return ProviderError.restricted(
            Restriction.REACHOUT_TIMELOCK,
            "reachout_timelock",
            "WhatsApp error 463 (reach-out time-lock)",
            **common,
        )
    if wa_code == 401:
        return ProviderError.restricted(Restriction.LOGGED_OUT, "logged_out", "WhatsApp error 401", **common)
    if status in (401, 403):
        return ProviderError.restricted(Restriction.UNAUTHORIZED, f"http_{status}", hint, **common)
    if status in (408, 429, 503):
        # Timed out waiting for the request, rate-limited, or unavailable: not processed.
        return ProviderError.transient(f"http_{status}", hint, retry_after=failure.retry_after, **common)
    if status >= 500:
        if failure.idempotent:
            return ProviderError.transient(f"http_{status}", hint, retry_after=failure.retry_after, **common)
        # 500/502/504 after a send left: the provider (or the gateway before it) may have sent it.
        return ProviderError.ambiguous(f"http_{status}", hint, **common)
    return ProviderError.permanent(f"http_{status}", hint, **common)


# --- the adapter base --------------------------------------------------------------------------------


class HttpProvider(WhatsAppProvider):
    """Base of the HTTP adapters: auth headers, JSON requests through the shared session, error mapping."""

    # Provider-specific reading of error bodies; None means only the common rules apply.
    specific_rule: ClassVar[SpecificRule | None] = None

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        session: aiohttp.ClientSession,
        timeout: aiohttp.ClientTimeout | float | None = None,
    ) -> None:
        self._base_url = URL(base_url.rstrip("/"))
        self._api_key = api_key
        self._session = session
        self._timeout = as_client_timeout(timeout)

    def __repr__(self) -> str:  # never the key
        return f"{type(self).__name__}(base_url={str(self._base_url)!r})"

    @abstractmethod
    def auth_headers(self) -> dict[str, str]:
        """The provider's auth header(s) carrying the key."""

    def url(self, *segments: str) -> URL:
        """Base URL plus path segments, each quoted as one segment (instance names are user input)."""
        url = self._base_url
        for segment in segments:
            url = url / segment
        return url

    def classify(self, failure: HttpFailure) -> ProviderError:
        return classify_http_failure(self.name, failure, type(self).specific_rule)

    async def _exchange(
        self,
        method: str,
        url: URL,
        *,
        body: dict[str, Any] | None,
        params: Mapping[str, str] | None,
        idempotent: bool,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, bytes, CIMultiDict[str]]:
        """One HTTP exchange: status, raw body and headers; socket failures become classified errors."""
        progress = _RequestProgress()
        options: dict[str, Any] = {
            "json": body,
            "params": params,
            "headers": {**(headers or {}), **self.auth_headers()},
        }
        if self._timeout is not None:  # otherwise the session's own timeout applies
            options["timeout"] = self._timeout
        # A CLIENT span whose context goes to the provider (traceparent): the simulator continues it in the
        # webhooks it fires for this call. Its attributes name the host and method, never the path or query.
        attributes = {
            "http.request.method": method,
            "server.address": url.host or "",
            "whatlead.provider": self.name,
        }
        request = self._session.request
        try:
            with tracing.span(
                "provider call", kind=SpanKind.CLIENT, attributes=attributes, only_in_trace=True
            ) as current:
                tracing.inject(options["headers"])
                async with request(method, url, trace_request_ctx=progress, **options) as response:
                    if current is not None:
                        current.set_attribute("http.response.status_code", response.status)
                    return response.status, await response.read(), CIMultiDict(response.headers)
        except aiohttp.ClientConnectorError as exc:
            # Refused, unreachable, DNS: nothing was sent.
            raise ProviderError.transient("connect_failed", type(exc).__name__, provider=self.name) from exc
        except aiohttp.ConnectionTimeoutError as exc:
            raise ProviderError.transient("connect_timeout", "", provider=self.name) from exc
        except aiohttp.InvalidURL as exc:
            raise ProviderError.permanent("invalid_url", "", provider=self.name) from exc
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise self._interrupted(exc, progress, idempotent=idempotent) from exc

    def _failure(
        self, status: int, raw: bytes, headers: CIMultiDict[str], *, idempotent: bool
    ) -> HttpFailure:
        text = raw[:2048].decode("utf-8", errors="replace")
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        return HttpFailure(status=status, body=parsed, text=text, headers=headers, idempotent=idempotent)

    async def request_json(
        self,
        method: str,
        url: URL,
        *,
        body: dict[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        idempotent: bool = False,
        headers: Mapping[str, str] | None = None,
        accept: Callable[[HttpFailure], bool] | None = None,
    ) -> Any:
        """Call the provider and return the parsed JSON of a 2xx answer; raise a classified ProviderError.

        `idempotent` calls are never AMBIGUOUS: repeating them is harmless. `headers` are sent besides the
        auth header (an `Accept`, say). A non-2xx answer `accept` returns True for is returned as its
        `HttpFailure` instead of raised (an answer that means "already done").
        """
        status, raw, answer_headers = await self._exchange(
            method, url, body=body, params=params, idempotent=idempotent, headers=headers
        )
        if 200 <= status < 300:
            return self._parse_success(raw, idempotent=idempotent)
        failure = self._failure(status, raw, answer_headers, idempotent=idempotent)
        if accept is not None and accept(failure):
            return failure
        raise self.classify(failure)

    async def lookup(
        self,
        method: str,
        url: URL,
        *,
        body: dict[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> LookupAnswer:
        """Ask the provider about a message and hand back its answer for the adapter to read.

        Raises only a TRANSIENT ProviderError, when the provider could not be asked at all (connection
        refused, timeout, 5xx, 408, 429); every other answer (2xx, 4xx) is returned as it came.
        """
        status, raw, headers = await self._exchange(method, url, body=body, params=params, idempotent=True)
        if status >= 500 or status in (408, 429):
            raise self.classify(self._failure(status, raw, headers, idempotent=True))
        failure = self._failure(status, raw, headers, idempotent=True)
        return LookupAnswer(status=status, body=failure.body, text=failure.text, empty=not raw.strip())

    def _interrupted(
        self, exc: BaseException, progress: _RequestProgress, *, idempotent: bool
    ) -> ProviderError:
        timeout = isinstance(exc, TimeoutError)
        code = (
            "read_timeout"
            if isinstance(exc, aiohttp.SocketTimeoutError)
            else ("timeout" if timeout else "connection_lost")
        )
        if idempotent or (progress.tracked and not progress.headers_sent):
            # Nothing left (or repeating is harmless): an ordinary retryable failure.
            return ProviderError.transient(code, type(exc).__name__, provider=self.name)
        return ProviderError.ambiguous(code, "the request may have reached the provider", provider=self.name)

    def _parse_success(self, raw: bytes, *, idempotent: bool) -> Any:
        try:
            return json.loads(raw) if raw else {}
        except ValueError:
            if idempotent:
                raise ProviderError.transient("unparseable_response", "", provider=self.name) from None
            raise ProviderError.ambiguous(
                "unparseable_response", "2xx without JSON: the send may have happened", provider=self.name
            ) from None

    async def post_for_message_id(
        self, url: URL, body: dict[str, Any], message_id_of: Callable[[Any], str | None]
    ) -> SentMessage:
        """POST a send and return the id the provider gave it; a 2xx without one is ambiguous."""
        message_id = message_id_of(await self.request_json("POST", url, body=body))
        if message_id is None:
            raise self.missing_id()
        return SentMessage(message_id)

    def missing_id(self) -> ProviderError:
        """A 2xx answer without a message id: the message probably left, but we cannot prove which."""
        return ProviderError.ambiguous("missing_message_id", "2xx without a message id", provider=self.name)


def dig(data: Any, *path: str) -> Any:
    """data[path[0]][path[1]]… or None when any step is missing or not a dict."""
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def non_empty_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
