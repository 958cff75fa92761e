"""Bounded media download for providers that take media inline (wuzapi): fetch a URL on the shared
session, refuse it while streaming once it passes the size limit, and classify every failure.

Nothing has been sent to WhatsApp when a download fails, so TRANSIENT here always means "safe to retry".
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

import aiohttp
from yarl import URL

from libs.providers.base import as_client_timeout
from libs.providers.port import ProviderError

DEFAULT_MAX_MEDIA_BYTES = 16 * 1024 * 1024  # WhatsApp's own limit for images/voice notes
DEFAULT_MEDIA_TIMEOUT = aiohttp.ClientTimeout(total=60, sock_connect=5, sock_read=20)
_CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class DownloadedMedia:
    """The fetched bytes, base64-encoded, the media type the server declared ("" when none) and the
    first bytes (for a magic-number check)."""

    data_base64: str
    content_type: str
    size: int
    head: bytes


@dataclass(frozen=True, slots=True)
class MediaFetcher:
    """Downloads media within `max_bytes` and `timeout`; errors carry `provider` for the logs."""

    session: aiohttp.ClientSession
    provider: str
    max_bytes: int = DEFAULT_MAX_MEDIA_BYTES
    timeout: aiohttp.ClientTimeout = DEFAULT_MEDIA_TIMEOUT

    async def fetch(self, url: str) -> DownloadedMedia:
        try:
            async with self.session.get(URL(url), timeout=self.timeout, allow_redirects=True) as response:
                self._check_status(response.status)
                declared = response.content_length
                if declared is not None and declared > self.max_bytes:
                    raise self._too_large()
                body = bytearray()
                async for chunk in response.content.iter_chunked(_CHUNK):
                    body += chunk
                    if len(body) > self.max_bytes:
                        raise self._too_large()  # a lying or absent Content-Length: stop reading here
                content_type = response.content_type if response.headers.get("Content-Type") else ""
        except ProviderError:
            raise
        except (aiohttp.InvalidURL, ValueError) as exc:
            raise ProviderError.permanent("invalid_media_url", "", provider=self.provider) from exc
        except TimeoutError as exc:
            raise ProviderError.transient(
                "media_download_timeout", "media download timed out", provider=self.provider
            ) from exc
        except aiohttp.ClientError as exc:
            raise ProviderError.transient(
                "media_download_failed", type(exc).__name__, provider=self.provider
            ) from exc
        return DownloadedMedia(
            base64.b64encode(body).decode("ascii"), content_type, len(body), bytes(body[:16])
        )

    def _check_status(self, status: int) -> None:
        if 200 <= status < 300:
            return
        if status >= 500 or status in (408, 429):
            raise ProviderError.transient(
                "media_download_failed",
                f"media server answered {status}",
                status=status,
                provider=self.provider,
            )
        # 404, 403, 410…: the link is wrong or gone; retrying will not bring it back.
        raise ProviderError.permanent(
            "media_unavailable", f"media server answered {status}", status=status, provider=self.provider
        )

    def _too_large(self) -> ProviderError:
        return ProviderError.permanent(
            "media_too_large", f"media is larger than {self.max_bytes} bytes", provider=self.provider
        )


def as_media_timeout(timeout: aiohttp.ClientTimeout | float | None) -> aiohttp.ClientTimeout:
    """The download timeout from seconds, an aiohttp timeout, or the default."""
    return as_client_timeout(timeout) or DEFAULT_MEDIA_TIMEOUT
