"""The event loops nodes share, with the liveness heartbeat dora's health check needs."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pyarrow as pa

from .contract import Port

CLOSED = {"input_closed": True}  # the metadata of the item `input_events(..., closes=True)` yields for a closed input
RESTARTED = {"node_restarted": True}  # `input_events(..., restarts=True)`: (restarted node's id, None, RESTARTED)
FAILED = {"node_failed": True}  # ... and (failed node's id, {affected_input_ids, error}, FAILED): it will not restart
HEARTBEAT_S = 1.0  # an `alive` message at most this often while the loop turns


class Heartbeat:
    """dora's `health_check_timeout` kills a node that has sent the daemon nothing for that long, idle or not. A node
    that declares the `alive` output sends an empty message on it from its event loop every HEARTBEAT_S, so the
    watchdog measures the loop itself: busy in one message longer than the timeout (or hung) is killed."""

    def __init__(self, node: Any, period_s: float = HEARTBEAT_S) -> None:
        self.node, self.period_s, self.last = node, period_s, time.monotonic()
        try:  # dora's MockNode (unit tests) declares no outputs
            self.enabled = Port.ALIVE in (node.node_config() or {}).get("outputs", [])
        except Exception:  # noqa: BLE001 - any other stand-in for a node
            self.enabled = False

    def beat(self) -> None:
        if self.enabled and time.monotonic() - self.last >= self.period_s:
            self.last = time.monotonic()
            self.node.send_output(Port.ALIVE, pa.array([], pa.int8()))


@contextmanager
def beating(node: Any) -> Iterator[None]:
    """Keeps the watchdog fed from a thread while the node loads its model (the loop's heartbeat cannot run yet,
    and a cold load can outlast any timeout that still catches a hung loop)."""
    heartbeat, stop = Heartbeat(node), threading.Event()

    def beat() -> None:
        while not stop.wait(0.5):
            heartbeat.beat()

    thread = threading.Thread(target=beat, daemon=True)
    if heartbeat.enabled:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        if thread.is_alive():
            thread.join()


def _events(node: Any, heartbeat: Heartbeat) -> Iterator[dict[str, Any]]:
    while True:
        event = node.next(timeout=heartbeat.period_s) if heartbeat.enabled else next(node, None)
        heartbeat.beat()
        if event is None:
            return
        if event["type"] == "ERROR" and "timed out" in str(event.get("error", "")):
            continue  # next(timeout) found nothing: only the heartbeat's turn
        yield event


def input_events(node: Any, closes: bool = False, restarts: bool = False) -> Iterator[tuple[str, Any, dict[str, Any]]]:
    """(input id, value, metadata) of each INPUT event, until the event stream ends; with `closes`, also
    (input id, None, CLOSED) when an input closes (a node whose other inputs come back from downstream, as the
    vad's `done*`, must end by itself, or it waits for nodes that wait for it); with `restarts`, also
    (node id, None, RESTARTED) when dora restarted an upstream node (what it held is lost) and (node id,
    {affected_input_ids, error}, FAILED) when one failed for good. Every node logs both.

    STOP does not end the loop: dora 1.1 can deliver STOP (ALL_INPUTS_CLOSED) ahead of inputs still queued, and
    breaking there would drop them. The stream ends by itself once every input is closed and drained, which
    also happens after a manual stop, when the source nodes exit.
    """
    for event in _events(node, Heartbeat(node)):
        kind = event["type"]
        if kind == "INPUT":
            yield event["id"], event["value"], event["metadata"]
        elif kind == "INPUT_CLOSED" and closes:
            yield event["id"], None, CLOSED
        elif kind in ("NODE_RESTARTED", "NODE_FAILED"):
            source = str(event.get("id", "?"))
            print(f"[dora] upstream node {source} {'restarted' if kind == 'NODE_RESTARTED' else 'failed'}",
                  file=sys.stderr)  # fmt: skip
            if restarts:
                yield source, event.get("value"), RESTARTED if kind == "NODE_RESTARTED" else FAILED
        elif kind == "ERROR":
            print(f"[dora] error event: {event.get('error', event)}", file=sys.stderr)


def wait_for_ready(node: Any, timeout_s: float, name: str) -> bool:
    """Consume events until the `ready` input sends (or closes); after `timeout_s`, go on anyway. False if the
    dataflow stopped meanwhile."""
    deadline = time.monotonic() + timeout_s
    for event in node:
        if event["type"] == "STOP":
            return False
        if event.get("id") == Port.READY and event["type"] in ("INPUT", "INPUT_CLOSED"):
            return True
        if time.monotonic() > deadline:
            print(f"[{name}] no `ready` after {timeout_s} s, starting anyway", file=sys.stderr)
            return True
    return False
