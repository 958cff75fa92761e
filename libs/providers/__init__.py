"""Provider port (send text/media/audio/reaction, look a lost send up, classified errors), the session port
(connect a number by QR or pairing code, webhooks, status, logout, delete), the capability table per
provider version and engine, and the WhatsApp HTTP API adapters."""

from libs.providers.base import DEFAULT_TIMEOUT, create_client_session
from libs.providers.capabilities import (
    Capabilities,
    LookupMethod,
    LookupRequest,
    LookupResult,
    LookupVerdict,
    ProviderProfile,
    TimelockSurface,
    capabilities_of,
)
from libs.providers.evolution import EvolutionProvider
from libs.providers.factory import build_provider, build_sessions
from libs.providers.port import (
    ErrorClass,
    MediaKind,
    ProviderError,
    Restriction,
    SendAudioRequest,
    SendMediaRequest,
    SendReactionRequest,
    SendTextRequest,
    SentMessage,
    WhatsAppProvider,
    new_client_message_id,
)
from libs.providers.sessions import (
    SESSION_NOT_FOUND,
    PairingCode,
    ProviderSessions,
    QrCode,
    SessionStatus,
    SessionWebhook,
    is_session_not_found,
)
from libs.providers.turbozap import TurboZapProvider
from libs.providers.waha import WahaProvider
from libs.providers.wuzapi import WuzapiProvider

__all__ = [
    "DEFAULT_TIMEOUT",
    "SESSION_NOT_FOUND",
    "Capabilities",
    "ErrorClass",
    "EvolutionProvider",
    "LookupMethod",
    "LookupRequest",
    "LookupResult",
    "LookupVerdict",
    "MediaKind",
    "PairingCode",
    "ProviderError",
    "ProviderProfile",
    "ProviderSessions",
    "QrCode",
    "Restriction",
    "SendAudioRequest",
    "SendMediaRequest",
    "SendReactionRequest",
    "SendTextRequest",
    "SentMessage",
    "SessionStatus",
    "SessionWebhook",
    "TimelockSurface",
    "TurboZapProvider",
    "WahaProvider",
    "WhatsAppProvider",
    "WuzapiProvider",
    "build_provider",
    "build_sessions",
    "capabilities_of",
    "create_client_session",
    "is_session_not_found",
    "new_client_message_id",
]
