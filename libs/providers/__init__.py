"""Provider port (send text/media/audio/reaction, classified errors) and its WhatsApp HTTP API adapters."""

from libs.providers.base import DEFAULT_TIMEOUT, create_client_session
from libs.providers.evolution import EvolutionProvider
from libs.providers.factory import build_provider
from libs.providers.port import (
    ErrorClass,
    MediaKind,
    ProviderCapabilities,
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
    "ErrorClass",
    "EvolutionProvider",
    "MediaKind",
    "ProviderCapabilities",
    "ProviderError",
    "Restriction",
    "SendAudioRequest",
    "SendMediaRequest",
    "SendReactionRequest",
    "SendTextRequest",
    "SentMessage",
    "TurboZapProvider",
    "WahaProvider",
    "WhatsAppProvider",
    "WuzapiProvider",
    "build_provider",
    "create_client_session",
    "new_client_message_id",
]
