"""The event loops nodes share."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from typing import Any

from .contract import Port

CLOSED = {"input_closed": True}  # the metadata of the item `input_events(..., closes=True)` yields for a closed input


def input_events(node: Any, closes: bool = False) -> Iterator[tuple[str, Any, dict[str, Any]]]:
    """(input id, value, metadata) of each INPUT event, until the event stream ends; with `closes`, also
    (input id, None, CLOSED) when an input closes (a node whose other inputs come back from downstream, as the
    vad's `done*`, must end by itself, or it waits for nodes that wait for it).

    STOP does not end the loop: dora 1.1 can deliver STOP (ALL_INPUTS_CLOSED) ahead of inputs still queued, and
    breaking there would drop them. The stream ends by itself once every input is closed and drained, which
    also happens after a manual stop, when the source nodes exit.
    """
    for event in node:
        kind = event["type"]
        if kind == "INPUT":
            yield event["id"], event["value"], event["metadata"]
        elif kind == "INPUT_CLOSED" and closes:
            yield event["id"], None, CLOSED
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
