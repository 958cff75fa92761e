"""`whatlead watch`: each change of the organization's intents as it happens (ops service, WatchIntents).

One line per change: position, time, intent, kind, instance, then the Gate's reason and the summary. The
stream is resumed by itself from the last position printed when the server cuts a watcher that fell
behind (RESOURCE_EXHAUSTED) or goes away for a moment (UNAVAILABLE), so no line is lost or printed twice;
`--after <position>` resumes an earlier watch the same way. Before the first line, it resumes from the
position the server named when the stream opened (`whatlead-position`, in the initial metadata), so a cut
even then loses nothing.
"""

from __future__ import annotations

import argparse
import sys
import time

import grpc

from libs.cli.common import (
    Backoff,
    Commands,
    StatusError,
    await_connection,
    cancelled_on_ctrl_c,
    enum_label,
    output,
    when,
)
from libs.cli.controls import ops
from libs.rpc.stream_start import start_position
from whatlead.gate.v1 import gate_pb2
from whatlead.ops.v1 import ops_pb2

# What a resume can cure, and how it reads for the user.
RESUMABLE = {
    grpc.StatusCode.RESOURCE_EXHAUSTED: "the server cut the stream (this watcher fell behind)",
    grpc.StatusCode.UNAVAILABLE: "the server is unavailable",
}
FIRST_DELAY_SECONDS = 0.2


def watch_intents(args: argparse.Namespace) -> int:
    stub = ops()
    await_connection("ops")
    after = args.after
    backoff = Backoff(first=args.retry_delay)
    while True:
        try:
            # No deadline: a watch lasts until the user leaves (Ctrl-C).
            with cancelled_on_ctrl_c() as follow:
                stream = follow(
                    stub.WatchIntents(
                        ops_pb2.WatchIntentsRequest(
                            organization_id=args.org,
                            intent_id=args.intent,
                            campaign_id=args.campaign,
                            after_position=after,
                        )
                    )
                )
                if not after:  # nothing printed yet: resume from where this stream starts
                    after = start_position(stream.initial_metadata())
                for response in stream:
                    output(response, line(response))
                    after = response.position
                    backoff.received()
            return 0  # the server ended the stream: nothing more will come
        except grpc.RpcError as error:
            code = error.code()
            if code == grpc.StatusCode.OUT_OF_RANGE:
                raise StatusError(
                    code,
                    f"{error.details()} (position {after or '-'} is older than what "
                    "the server keeps: watch again without --after to follow from now; "
                    "`whatlead timeline <intent id>` tells an intent's whole story)",
                ) from None
            if code not in RESUMABLE:
                raise
            resume = f"--after {after}" if after else "no --after"
            delay = backoff.next_delay()
            if delay is None:
                raise StatusError(
                    code,
                    f"{error.details()} ({RESUMABLE[code]}; gave up after "
                    f"{backoff.attempts} attempts; watch again with {resume})",
                ) from None
            print(
                f"# {RESUMABLE[code]}: resuming with {resume} in {delay:.1f} s",
                file=sys.stderr,
                flush=True,
            )
            time.sleep(delay)


def line(response: ops_pb2.WatchIntentsResponse) -> str:
    change = response.change
    details = [change.summary] if change.summary else []
    if change.reason != gate_pb2.DECISION_REASON_UNSPECIFIED:
        details.insert(0, enum_label(gate_pb2.DecisionReason, change.reason))
    return (
        f"{response.position:>8}  {when(change.occurred_at, milliseconds=True)}  {change.intent_id}  "
        f"{enum_label(ops_pb2.IntentChangeKind, change.kind):<15}  {change.instance_id or '-':<36}  "
        f"{'  '.join(details) or '-'}"
    )


def register(commands: Commands) -> None:
    watch = commands.add_parser(
        "watch", help="follow the organization's intents live: one line per change (Ctrl-C to stop)"
    )
    watch.add_argument("--intent", default="", help="only this intent's changes")
    watch.add_argument("--campaign", default="", help="only this campaign's intents")
    watch.add_argument(
        "--after",
        default="",
        metavar="POSITION",
        help="resume right after this position (the first column of an earlier watch); default: from now",
    )
    watch.add_argument("--retry-delay", type=float, default=FIRST_DELAY_SECONDS, help=argparse.SUPPRESS)
    watch.set_defaults(run=watch_intents)
