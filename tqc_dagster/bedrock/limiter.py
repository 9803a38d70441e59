"""A thread-safe limiter for requests per minute and tokens per minute.

Requests are spaced evenly (at least 60 s / quota apart, with a small safety margin), so no
60-second window carries more than the request quota however the window is placed; bursts
are impossible by construction. Tokens are reserved up front (input estimate + maxTokens),
reconciled with the usage Bedrock reports, and given back when a request was throttled.

When Bedrock throttles, the spacing adapts instead of every worker pausing: additive increase,
multiplicative decrease of the rate, as TCP congestion control does. A throttle widens the
spacing by THROTTLE_SLOWDOWN; every answered request narrows it by RECOVERY_STEP of the quota's
spacing, never below it. With throttles that do not depend on the rate (15 % at random) the
spacing stays near the quota's (0.15 x 10 % widening < 0.85 x 10 % narrowing per request); when
the real capacity is lower than the configured quota, the throttles rise and the rate follows it
down. The quota stays the ceiling.

The clock and the Condition the limiter waits on (and notifies) are injectable, so tests can run
it on simulated time.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

WINDOW_S = 60.0
SPACING_MARGIN = 0.01  # requests 1 % further apart than the quota needs: arrival jitter cannot push a window over
TOKEN_WINDOW_S = WINDOW_S * (1 + SPACING_MARGIN)  # likewise, tokens stay reserved 1 % longer than a minute
THROTTLE_SLOWDOWN = 1.1  # a throttle widens the spacing by 10 % (multiplicative decrease of the rate)
RECOVERY_STEP = 0.1  # an answer narrows it by 10 % of the quota's spacing (additive increase of the rate)
MAX_SLOWDOWN = 20.0  # the spacing never grows past 20x the quota's: the rate never drops below 5 % of the quota


@dataclass
class Reservation:
    started: float
    tokens: int


class RateLimiter:
    def __init__(
        self,
        requests_per_minute: float,
        tokens_per_minute: int,
        clock: Callable[[], float] = time.monotonic,
        condition: threading.Condition | None = None,
    ):
        if requests_per_minute <= 0 or tokens_per_minute <= 0:
            raise ValueError("requests_per_minute and tokens_per_minute must be positive")
        self.requests_per_minute = requests_per_minute
        self.tokens_per_minute = tokens_per_minute
        self._quota_spacing = WINDOW_S / requests_per_minute * (1 + SPACING_MARGIN)
        self._spacing = self._quota_spacing
        self._clock = clock
        self._next_start = float("-inf")
        self._reservations: deque[Reservation] = deque()
        self._changed = condition if condition is not None else threading.Condition()  # acquire waits on it; reconcile notifies it

    def acquire(self, tokens: int) -> Reservation:
        """Block until a request of `tokens` may start; the returned reservation counts against both quotas."""
        if tokens > self.tokens_per_minute:
            raise ValueError(f"one request of {tokens} tokens can never fit a quota of {self.tokens_per_minute} tokens/min")
        with self._changed:
            while True:
                now = self._clock()
                start = max(now, self._next_start, self._tokens_free_at(now, tokens))
                if start <= now:
                    self._next_start = now + self._spacing
                    reservation = Reservation(now, tokens)
                    self._reservations.append(reservation)
                    return reservation
                self._changed.wait(timeout=start - now)

    def _tokens_free_at(self, now: float, tokens: int) -> float:
        """Earliest time at which `tokens` more fit in the sliding window."""
        while self._reservations and self._reservations[0].started <= now - TOKEN_WINDOW_S:
            self._reservations.popleft()
        excess = sum(r.tokens for r in self._reservations) + tokens - self.tokens_per_minute
        if excess <= 0:
            return now
        for reservation in self._reservations:
            excess -= reservation.tokens
            if excess <= 0:
                return reservation.started + TOKEN_WINDOW_S
        return now + TOKEN_WINDOW_S

    def reconcile(self, reservation: Reservation, actual_tokens: int) -> None:
        """Replace the up-front estimate by what Bedrock reports it used."""
        with self._changed:
            reservation.tokens = actual_tokens
            self._changed.notify_all()

    def give_back(self, reservation: Reservation) -> None:
        """A throttled request consumed nothing: return its tokens."""
        self.reconcile(reservation, 0)

    @property
    def spacing(self) -> float:
        """Seconds between request starts now: the quota's (60 s / requests_per_minute, plus the margin) or wider."""
        return self._spacing

    def throttled(self) -> None:
        """Bedrock throttled a request: widen the spacing by THROTTLE_SLOWDOWN (at most MAX_SLOWDOWN x the quota's)."""
        with self._changed:
            self._spacing = min(self._spacing * THROTTLE_SLOWDOWN, self._quota_spacing * MAX_SLOWDOWN)

    def answered(self) -> None:
        """A request was answered: narrow the spacing by RECOVERY_STEP of the quota's, never below it."""
        with self._changed:
            self._spacing = max(self._quota_spacing, self._spacing - RECOVERY_STEP * self._quota_spacing)


_SHARED: dict[tuple, RateLimiter] = {}
_SHARED_LOCK = threading.Lock()


def shared_limiter(quota_key: tuple, requests_per_minute: float, tokens_per_minute: int) -> RateLimiter:
    """One limiter per quota (region, model) per process, so every client in the process shares it."""
    with _SHARED_LOCK:
        limiter = _SHARED.get(quota_key)
        if limiter is None or (limiter.requests_per_minute, limiter.tokens_per_minute) != (requests_per_minute, tokens_per_minute):
            limiter = _SHARED[quota_key] = RateLimiter(requests_per_minute, tokens_per_minute)
        return limiter
