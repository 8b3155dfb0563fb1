"""A circuit breaker for a remote service: fail fast while it is down, one trial request when the cool-down ends."""

from __future__ import annotations

import time
from collections.abc import Callable

from ..common.errors import ServiceUnavailable


class CircuitBreaker:
    """closed -> (N consecutive failures) -> open -> (cool-down) -> half-open -> one trial -> closed / open."""

    def __init__(self, failures: int, cooldown_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        if failures < 1:
            raise ValueError("breaker failures must be >= 1")
        self.failures, self.cooldown_s, self.clock = failures, cooldown_s, clock
        self.consecutive = 0
        self.opened_at: float | None = None
        self.trial_running = False

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half-open" if self.clock() - self.opened_at >= self.cooldown_s else "open"

    def acquire(self) -> bool:
        """Before a call: raise ServiceUnavailable if open; return True if this call is the half-open trial."""
        state = self.state
        if state == "closed":
            return False
        if state == "half-open" and not self.trial_running:
            self.trial_running = True
            return True
        opened = self.opened_at if self.opened_at is not None else self.clock()
        left = max(0.0, opened + self.cooldown_s - self.clock()) if state == "open" else 0.0
        raise ServiceUnavailable(
            f"translation service unavailable: {self.consecutive} consecutive failures, "
            f"circuit open (next trial in {left:.1f} s)"
        )

    def record_success(self) -> None:
        self.consecutive, self.opened_at, self.trial_running = 0, None, False

    def record_failure(self) -> None:
        self.consecutive += 1
        if self.trial_running or self.consecutive >= self.failures:
            self.opened_at = self.clock()
        self.trial_running = False
