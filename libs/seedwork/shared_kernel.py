"""Vocabulary every bounded context speaks the same way (the shared kernel). Values match the proto enums
without their prefix, e.g. Provider.WAHA <-> whatlead.common.v1.PROVIDER_WAHA."""

from __future__ import annotations

from enum import StrEnum


class Provider(StrEnum):
    EVOLUTION = "EVOLUTION"
    WAHA = "WAHA"
    WUZAPI = "WUZAPI"
    TURBOZAP = "TURBOZAP"
    SIMULATOR = "SIMULATOR"


class ProviderEngine(StrEnum):
    """The engine behind a provider that runs several (WAHA); UNSPECIFIED where there is one or it is
    not known."""

    UNSPECIFIED = "UNSPECIFIED"
    WEBJS = "WEBJS"
    NOWEB = "NOWEB"
    GOWS = "GOWS"


class Purpose(StrEnum):
    WARMUP = "WARMUP"
    DISPATCH = "DISPATCH"
    SCHEDULE = "SCHEDULE"


class ConnectionState(StrEnum):
    UNKNOWN = "UNKNOWN"
    CONNECTING = "CONNECTING"
    CONNECTED = "CONNECTED"
    DISCONNECTED = "DISCONNECTED"
    QR_REQUIRED = "QR_REQUIRED"
    LOGGED_OUT = "LOGGED_OUT"
    BANNED = "BANNED"


class MessageType(StrEnum):
    TEXT = "TEXT"
    AUDIO = "AUDIO"
    MEDIA = "MEDIA"
    REACTION = "REACTION"


class TargetKind(StrEnum):
    PHONE = "PHONE"  # E.164 digits without "+"
    GROUP = "GROUP"  # a group JID


class ControlScope(StrEnum):
    """What an operator's pause (the kill-switch) applies to."""

    INSTANCE = "INSTANCE"
    ORGANIZATION = "ORGANIZATION"
    CAMPAIGN = "CAMPAIGN"
