"""The event loops nodes share."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from typing import Any

from .contract import Port


def input_events(node: Any) -> Iterator[tuple[str, Any, dict[str, Any]]]:
    """(input id, value, metadata) of each INPUT event, until the event stream ends.

    STOP does not end the loop: dora 1.1 can deliver STOP (ALL_INPUTS_CLOSED) ahead of inputs still queued, and
    breaking there would drop them. The stream ends by itself once every input is closed and drained, which
    also happens after a manual stop, when the source nodes exit.
    """
    for event in node:
        kind = event["type"]
        if kind == "INPUT":
            yield event["id"], event["value"], event["metadata"]
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
