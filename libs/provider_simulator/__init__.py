"""A WhatsApp provider simulator speaking WAHA's HTTP API (and wuzapi's), with a ledger of every accepted
send and per-session modes that imitate each provider's quirks.

`make run` starts it as a process (`python -m libs.provider_simulator`); tests and benchmarks run it in
their own event loop with `run_simulator(...)`.
"""

from libs.provider_simulator.ledger import Ledger, LedgerEntry
from libs.provider_simulator.server import ProviderSimulator, SimulatedSession, run_simulator
from libs.provider_simulator.session_webhook import apply_session_webhook
from libs.provider_simulator.settings import SimulatorSettings, parse_settings
from libs.provider_simulator.webhooks import WebhookTarget, sign

__all__ = [
    "Ledger",
    "LedgerEntry",
    "ProviderSimulator",
    "SimulatedSession",
    "SimulatorSettings",
    "WebhookTarget",
    "apply_session_webhook",
    "parse_settings",
    "run_simulator",
    "sign",
]
