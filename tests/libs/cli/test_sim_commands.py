"""`whatlead sim scan | logout | ban` against a fake registry and a real provider simulator: the instance's
provider reference names the simulator's session, and the control route plays the phone."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from libs.provider_simulator import ProviderSimulator, run_simulator
from tests.libs.cli.conftest import API_KEY
from whatlead.common.v1 import common_pb2
from whatlead.reputation.v1 import reputation_pb2

INSTANCE_ID = "0193a1b2-0000-7000-8000-000000000001"
SESSION = "sales-1"
SIMULATOR_KEY = "the-simulators-key"


@pytest.fixture(autouse=True)
def api_key(registry, monkeypatch):
    monkeypatch.setenv("WHATLEAD_API_KEY", API_KEY)


@pytest.fixture
async def simulator(monkeypatch) -> AsyncIterator[ProviderSimulator]:
    async with run_simulator(api_key=SIMULATOR_KEY) as sim:
        monkeypatch.setenv("WHATLEAD_SIMULATOR_URL", sim.base_url)
        monkeypatch.setenv("WHATLEAD_SIMULATOR_API_KEY", SIMULATOR_KEY)
        yield sim


def registered(registry, provider: common_pb2.Provider.ValueType = common_pb2.PROVIDER_SIMULATOR) -> None:
    instance = reputation_pb2.Instance(id=INSTANCE_ID, provider=provider, provider_instance_ref=SESSION)
    registry.answer("GetInstance", reputation_pb2.GetInstanceResponse(instance=instance))


async def test_sim_scan_links_the_instances_session_showing_a_qr_code(registry, simulator, whatlead):
    registered(registry)
    simulator.start_pairing(SESSION)

    code, out, err = await whatlead("sim", "scan", INSTANCE_ID)

    assert code == 0, err
    [request] = registry.requests("GetInstance")
    assert request.instance_id == INSTANCE_ID
    assert simulator.sessions[SESSION].status == "WORKING" and simulator.sessions[SESSION].paired
    assert out.startswith(f"scanned: instance {INSTANCE_ID}, simulator session {SESSION} is now WORKING")


async def test_sim_logout_and_ban_play_the_phone_too(registry, simulator, whatlead):
    registered(registry)
    registered(registry)
    simulator.session(SESSION)  # linked and working

    code, out, err = await whatlead("sim", "logout", INSTANCE_ID)
    assert code == 0, err
    assert "is now FAILED" in out and not simulator.sessions[SESSION].paired

    code, _, err = await whatlead("sim", "ban", INSTANCE_ID)
    assert code == 0, err
    assert simulator.sessions[SESSION].banned


async def test_an_instance_on_another_provider_is_refused_before_the_simulator_is_asked(
    registry, simulator, whatlead
):
    registered(registry, common_pb2.PROVIDER_WAHA)

    code, out, err = await whatlead("sim", "scan", INSTANCE_ID)

    assert code == 1 and out == ""
    assert err.startswith(f"error: instance {INSTANCE_ID} is on WAHA, not on the simulator")
    assert simulator.sessions == {}


async def test_what_the_simulator_refuses_is_one_clear_line(registry, simulator, whatlead):
    registered(registry)
    code, _, err = await whatlead("sim", "scan", INSTANCE_ID)  # no such session yet
    assert code == 1
    assert err.startswith("error: the simulator answered 404: We didn't find a session with name 'sales-1'")
    assert "whatlead instances connect" in err

    registered(registry)
    simulator.session(SESSION)  # connected: no QR code showing
    code, _, err = await whatlead("sim", "scan", INSTANCE_ID)
    assert code == 1
    assert err == "error: the simulator answered 409: session 'sales-1' is WORKING, not showing a QR code\n"

    registered(registry)
    code, _, err = await whatlead("sim", "scan", INSTANCE_ID, "--simulator-api-key", "wrong")
    assert code == 1 and "401: the simulator's API key was not accepted" in err


async def test_a_simulator_out_of_reach_says_where_it_was_looked_for(registry, whatlead, monkeypatch):
    registered(registry)

    code, _, err = await whatlead("sim", "scan", INSTANCE_ID, "--simulator-url", "http://127.0.0.1:9")

    assert code == 64 + 14  # UNAVAILABLE, as a gRPC service out of reach
    assert err.startswith("error: UNAVAILABLE: cannot reach the simulator at http://127.0.0.1:9 (")
    assert "WHATLEAD_SIMULATOR_URL" in err
