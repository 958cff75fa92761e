"""A number linked by QR code and a message followed live, as a user does it with `make run` and the CLI:
register an instance on the simulator with no connection, `whatlead instances connect` it (ConnectInstance,
then the QR code on WatchInstance), the simulated phone scans (`whatlead sim scan`), CONNECTED arrives on the
stream within a second, and a message sent through the number shows SENT, DELIVERED and READ on
`whatlead watch` (WatchIntents), each once and in order. Runs on its own data folder and shifted ports."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import grpc

from tests.e2e import test_make_run
from tests.e2e.test_make_run import ROOT, Stack, eventually_shows
from whatlead.common.v1 import common_pb2
from whatlead.reputation.v1 import reputation_pb2, reputation_pb2_grpc

stack = test_make_run.stack  # the same `make run`, on its own ports and data folder
SCAN_TO_CONNECTED_SECONDS = 1.0  # what the issue promises


@dataclass(frozen=True)
class Seen:
    at: float  # time.monotonic() when it arrived
    item: object


class Arrivals:
    """What a producer (a process's stdout, a gRPC stream) yields, read in a thread and kept with the time
    each item arrived, so a test can wait for one without blocking on the producer."""

    def __init__(self, items: Iterator[object], explain: Callable[[], str] = str) -> None:
        self._queue: queue.Queue[Seen | None] = queue.Queue()
        self._explain = explain  # what to add to a failure: why the producer ended
        self.seen: list[Seen] = []

        def read() -> None:
            try:
                for item in items:
                    self._queue.put(Seen(time.monotonic(), item))
            except grpc.RpcError:  # cancelled when the test is done with it
                pass
            finally:
                self._queue.put(None)

        threading.Thread(target=read, daemon=True).start()

    def wait_for(self, wanted: Callable[[object], bool], timeout: float = 30) -> Seen:
        for seen in self.seen:
            if wanted(seen.item):
                return seen
        deadline = time.monotonic() + timeout
        while True:
            try:
                arrived = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"not seen in {timeout} s; seen: {self.items()}") from None
            assert arrived is not None, f"ended; seen: {self.items()} {self._explain()}"
            self.seen.append(arrived)
            if wanted(arrived.item):
                return arrived

    def items(self) -> list[object]:
        return [seen.item for seen in self.seen]


def cli_env(stack: Stack) -> dict[str, str]:
    """The stack's CLI environment, with ops (WatchIntents) and the simulator (`whatlead sim`) too."""
    return {
        **stack.env(),
        "WHATLEAD_OPS_ADDR": f"127.0.0.1:{stack.port(50054)}",
        "WHATLEAD_SIMULATOR_URL": f"http://127.0.0.1:{stack.port(8090)}",
    }


@contextmanager
def whatlead(stack: Stack, key: str, *args: str) -> Iterator[tuple[subprocess.Popen[str], Arrivals]]:
    """`whatlead *args` running in the background (a stream it follows), its stdout read line by line;
    stopped with Ctrl-C at the end if still running."""
    process = subprocess.Popen(
        [sys.executable, "-m", "libs.cli.main", *args],
        env={**cli_env(stack), "WHATLEAD_API_KEY": key},
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stderr is not None
    stderr = process.stderr

    def exit_status() -> str:
        return f"exited {process.wait(timeout=10)}: {stderr.read()}"

    try:
        yield process, Arrivals((line.rstrip("\n") for line in process.stdout), exit_status)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def line_has(*words: str) -> Callable[[object], bool]:
    return lambda line: isinstance(line, str) and all(word in line.split() for word in words)


def test_a_number_linked_by_qr_code_then_a_message_followed_live_to_read(stack: Stack):
    key = stack.new_organization_key("e2e-onboarding")
    registered = stack.cli(
        "instances", "register", "--provider", "simulator", "--ref", "e2e-onboard",
        "--phone", "+5511955553333", key=key,
    )  # fmt: skip
    assert registered.returncode == 0, registered.stderr
    instance = json.loads(registered.stdout)
    instance_id = instance["id"]
    assert instance.get("connection_state", "CONNECTION_STATE_UNKNOWN") == "CONNECTION_STATE_UNKNOWN"

    metadata = (("authorization", f"Bearer {key}"),)
    with (
        grpc.insecure_channel(stack.env()["WHATLEAD_REPUTATION_ADDR"]) as channel,
        whatlead(stack, key, "watch") as (watcher, changes),  # from now: before anything is sent
        whatlead(stack, key, "instances", "connect", instance_id) as (connect, connecting),
    ):
        # `connect` started the session at the simulator and drew its QR code.
        connecting.wait_for(line_has("QR_REQUIRED"))
        connecting.wait_for(lambda line: isinstance(line, str) and line.startswith("Scan with WhatsApp"))
        # Anyone with an admin key can follow the same instance: the stream starts with the QR code showing.
        registry = reputation_pb2_grpc.ReputationServiceStub(channel)
        stream = registry.WatchInstance(
            reputation_pb2.WatchInstanceRequest(instance_id=instance_id), metadata=metadata
        )
        try:
            updates = Arrivals(update.connection for update in stream)
            showing = updates.wait_for(
                lambda c: (
                    isinstance(c, reputation_pb2.InstanceConnection)
                    and c.state == common_pb2.CONNECTION_STATE_QR_REQUIRED
                )
            ).item
            assert isinstance(showing, reputation_pb2.InstanceConnection)
            assert showing.qr.code.startswith("2@"), showing

            # The phone scans: CONNECTED on the stream within a second, and `connect` is done.
            scanned = subprocess.run(
                [sys.executable, "-m", "libs.cli.main", "sim", "scan", instance_id],
                env={**cli_env(stack), "WHATLEAD_API_KEY": key},
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=60,
            )
            scan_done = time.monotonic()
            assert scanned.returncode == 0, scanned.stderr
            connected = updates.wait_for(
                lambda c: (
                    isinstance(c, reputation_pb2.InstanceConnection)
                    and c.state == common_pb2.CONNECTION_STATE_CONNECTED
                )
            )
        finally:
            stream.cancel()
        scan_to_connected = connected.at - scan_done
        assert scan_to_connected < SCAN_TO_CONNECTED_SECONDS, scan_to_connected
        assert connect.wait(timeout=30) == 0, connect.stderr.read() if connect.stderr else ""
        connecting.wait_for(lambda line: isinstance(line, str) and line.startswith("connected:"))

        # A message through the number (the Gate hears of the connection from reputation's stream).
        approved = eventually_shows(
            stack, "APPROVED", "send", "--to", "+5511988887777", "--text", "oi", key=key
        )
        intent_id = approved.split()[0]
        assert instance_id in approved
        # ...followed live: sent by the Executor, then the simulator's receipts through the gateway.
        for kind in ("SENT", "DELIVERED", "READ"):
            changes.wait_for(line_has(intent_id, kind), timeout=60)
        watcher.send_signal(signal.SIGINT)
        assert watcher.wait(timeout=10) == 130  # Ctrl-C: a clean stop

    mine = [
        seen.item.split() for seen in changes.seen if isinstance(seen.item, str) and intent_id in seen.item
    ]
    kinds = [fields[4] for fields in mine]
    assert kinds.index("APPROVED") < kinds.index("SENT") < kinds.index("READ"), kinds
    assert all(fields[5] == instance_id for fields in mine if fields[4] in ("APPROVED", "SENT"))
    positions = [int(seen.item.split()[0]) for seen in changes.seen if isinstance(seen.item, str)]
    assert positions == sorted(set(positions))  # every line once, in the stream's order
    print(f"\nscan -> CONNECTED on WatchInstance: {scan_to_connected:.3f} s\n`whatlead watch`, this intent:")
    print("\n".join(" ".join(fields) for fields in mine))
