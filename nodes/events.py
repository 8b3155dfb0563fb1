"""The event loop every processing node shares."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any


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
