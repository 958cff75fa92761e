"""Provider port (send text/media/audio/reaction, look a lost send up, classified errors), the capability
table per provider version and engine, and the WhatsApp HTTP API adapters."""

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
from libs.providers.factory import build_provider
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
from libs.providers.turbozap import TurboZapProvider
from libs.providers.waha import WahaProvider
from libs.providers.wuzapi import WuzapiProvider

__all__ = [
    "DEFAULT_TIMEOUT",
    "Capabilities",
    "ErrorClass",
    "EvolutionProvider",
    "LookupMethod",
    "LookupRequest",
    "LookupResult",
    "LookupVerdict",
    "MediaKind",
    "ProviderError",
    "ProviderProfile",
    "Restriction",
    "SendAudioRequest",
    "SendMediaRequest",
    "SendReactionRequest",
    "SendTextRequest",
    "SentMessage",
    "TimelockSurface",
    "TurboZapProvider",
    "WahaProvider",
    "WhatsAppProvider",
    "WuzapiProvider",
    "build_provider",
    "capabilities_of",
    "create_client_session",
    "new_client_message_id",
]
