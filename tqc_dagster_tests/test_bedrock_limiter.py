"""RateLimiter: evenly spaced requests, a sliding 60-second token window, reconcile, give_back, the adaptive spacing.

Most tests run the limiter on a simulated clock: its Condition is one whose wait() advances the
clock instead of sleeping and runs scheduled events (a request finishing and reconciling its
tokens, a throttle giving them back) at their simulated time, so minutes of traffic take
milliseconds and the 60-second properties are checked over whole windows. The tests with real
threads run them on VirtualTime (bedrock_helpers): time moves on only when every thread waits,
so their verdicts are exact simulated times, whatever the load on the machine.
"""

from __future__ import annotations

import heapq
import itertools
import random
import threading
import uuid

import pytest

from tqc_dagster.bedrock import limiter as limiter_module
from tqc_dagster.bedrock.limiter import MAX_SLOWDOWN, THROTTLE_SLOWDOWN, SPACING_MARGIN, TOKEN_WINDOW_S, WINDOW_S, RateLimiter, shared_limiter
from tqc_dagster_tests.bedrock_helpers import HANG_GUARD_S, VirtualTime, sliding_max

T0 = 1000.0


class SimClock:
    def __init__(self, start: float = T0):
        self.now = start

    def __call__(self) -> float:
        return self.now


class SimCondition:
    """The limiter's Condition on simulated time: wait() advances the clock; a notify during a wait ends it early."""

    MAX_WAITS = 100_000

    def __init__(self, clock: SimClock):
        self.clock = clock
        self._lock = threading.RLock()  # reentrant: a scheduled reconcile runs inside acquire's wait
        self._events: list = []
        self._sequence = itertools.count()
        self._notified = False
        self.waits = 0

    def __enter__(self):
        self._lock.acquire()
        return self

    def __exit__(self, *exc):
        self._lock.release()

    def notify_all(self) -> None:
        self._notified = True

    notify = notify_all

    def at(self, when: float, action) -> None:
        heapq.heappush(self._events, (when, next(self._sequence), action))

    def run_until(self, when: float) -> None:
        while self._events and self._events[0][0] <= when:
            at, _, action = heapq.heappop(self._events)
            self.clock.now = max(self.clock.now, at)
            action()
        self.clock.now = max(self.clock.now, when)

    def wait(self, timeout: float | None = None) -> bool:
        assert timeout is not None and timeout > 0, "the limiter must always wait with a positive timeout"
        self.waits += 1
        assert self.waits < self.MAX_WAITS, "the limiter is spinning"
        target = self.clock.now + timeout
        self._notified = False
        while self._events and self._events[0][0] <= target:
            at, _, action = heapq.heappop(self._events)
            self.clock.now = max(self.clock.now, at)
            action()
            if self._notified:
                return True
        self.clock.now = target
        return False


def simulated(requests_per_minute: float, tokens_per_minute: int) -> tuple[RateLimiter, SimClock, SimCondition]:
    clock = SimClock()
    condition = SimCondition(clock)
    limiter = RateLimiter(requests_per_minute, tokens_per_minute, clock=clock, condition=condition)
    return limiter, clock, condition


def spacing(requests_per_minute: float) -> float:
    return WINDOW_S / requests_per_minute * (1 + SPACING_MARGIN)


# --- construction ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rpm, tpm", [(0, 1000), (-1, 1000), (10, 0), (10, -5)])
def test_non_positive_quotas_are_refused(rpm, tpm):
    with pytest.raises(ValueError, match="must be positive"):
        RateLimiter(rpm, tpm)


def test_a_request_larger_than_the_token_quota_raises_at_once():
    limiter, clock, condition = simulated(600, 1000)
    with pytest.raises(ValueError, match=r"1001 tokens can never fit a quota of 1000 tokens/min"):
        limiter.acquire(1001)
    assert clock.now == T0 and condition.waits == 0  # no waiting first
    assert limiter.acquire(1000).started == T0  # exactly the quota is fine


# --- request spacing ---------------------------------------------------------------------------------------


def test_first_request_starts_at_once_and_the_next_ones_evenly_spaced():
    limiter, clock, _ = simulated(600, 10**9)
    starts = [limiter.acquire(10).started for _ in range(50)]
    assert starts[0] == T0
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert min(gaps) >= spacing(600) * (1 - 1e-9)
    assert max(gaps) == pytest.approx(spacing(600))  # no slower than needed either


def test_an_idle_limiter_does_not_bank_requests_for_a_burst():
    limiter, clock, _ = simulated(60, 10**9)
    limiter.acquire(1)
    clock.now += 3600  # an hour idle
    starts = [limiter.acquire(1).started for _ in range(5)]
    assert starts[0] == T0 + 3600
    assert [b - a for a, b in zip(starts, starts[1:])] == pytest.approx([spacing(60)] * 4)


@pytest.mark.parametrize("rpm", [1, 7, 150, 600, 2000])
def test_no_60_second_window_carries_more_than_the_request_quota(rpm):
    limiter, clock, _ = simulated(rpm, 10**12)
    n = max(6, int(rpm * 3.5))  # several whole windows, windows placed anywhere
    starts = [limiter.acquire(1).started for _ in range(n)]
    assert sliding_max(starts, WINDOW_S) <= rpm
    achieved = (n - 1) / (starts[-1] - starts[0]) * 60
    assert achieved >= rpm / (1 + SPACING_MARGIN) * (1 - 1e-9)  # and the quota is used up to the margin


def test_request_quota_holds_with_random_throttles_give_backs_and_idle_gaps():
    rng = random.Random(3)
    limiter, clock, condition = simulated(600, 10**12)
    starts = []
    for _ in range(3000):
        reservation = limiter.acquire(rng.randint(1, 5000))
        starts.append(reservation.started)
        draw = rng.random()
        if draw < 0.05:
            limiter.give_back(reservation)
            limiter.throttled()
        elif draw < 0.07:
            condition.run_until(clock.now + rng.uniform(0, 90))  # nobody asks for a while
        else:
            limiter.answered()
    assert sliding_max(starts, WINDOW_S) <= 600
    assert all(b - a >= spacing(600) * (1 - 1e-9) for a, b in zip(starts, starts[1:]))


# --- the token window --------------------------------------------------------------------------------------


def test_tokens_wait_for_the_oldest_reservation_to_leave_the_window():
    limiter, clock, _ = simulated(6000, 1000)
    first = limiter.acquire(400)
    second = limiter.acquire(400)
    assert second.started == pytest.approx(T0 + spacing(6000))
    third = limiter.acquire(400)  # 1200 > 1000: waits until `first` has left the token window
    assert third.started == pytest.approx(first.started + TOKEN_WINDOW_S)
    fourth = limiter.acquire(400)  # second + third = 800; 1200 again: waits for `second`
    assert fourth.started == pytest.approx(second.started + TOKEN_WINDOW_S)


def test_tokens_stay_reserved_a_little_longer_than_a_minute():
    """A margin like the request spacing's: a request released the instant an old one leaves the limiter's
    window must not reach the server inside the server's 60 s window of the old one (arrival jitter)."""
    limiter, clock, _ = simulated(6000, 1000)
    first = limiter.acquire(1000)
    second = limiter.acquire(1000)
    assert second.started - first.started > WINDOW_S + 0.1


def test_a_wait_for_tokens_can_skip_several_reservations():
    limiter, clock, _ = simulated(6000, 1000)
    starts = [limiter.acquire(250).started for _ in range(4)]
    big = limiter.acquire(700)  # needs the three oldest to leave the window
    assert big.started == pytest.approx(starts[2] + TOKEN_WINDOW_S)


def test_reconcile_replaces_the_estimate_and_frees_tokens():
    limiter, clock, _ = simulated(6000, 1000)
    first = limiter.acquire(900)
    limiter.reconcile(first, 100)
    assert first.tokens == 100
    assert limiter.acquire(900).started == pytest.approx(T0 + spacing(6000))


def test_reconcile_upwards_holds_later_requests_back():
    limiter, clock, _ = simulated(6000, 1000)
    first = limiter.acquire(100)
    limiter.reconcile(first, 1000)  # the model used more than estimated
    assert limiter.acquire(100).started == pytest.approx(first.started + TOKEN_WINDOW_S)


def test_give_back_returns_a_throttled_requests_tokens():
    limiter, clock, _ = simulated(6000, 1000)
    throttled = limiter.acquire(1000)
    limiter.give_back(throttled)
    assert throttled.tokens == 0
    assert limiter.acquire(1000).started == pytest.approx(T0 + spacing(6000))


def test_give_back_during_a_wait_wakes_the_waiter_at_once():
    limiter, clock, condition = simulated(6000, 1000)
    throttled = limiter.acquire(1000)
    condition.at(T0 + 5, lambda: limiter.give_back(throttled))  # the 429 arrives 5 s later
    assert limiter.acquire(1000).started == pytest.approx(T0 + 5)


def test_tokens_per_minute_never_exceeded_in_any_60_second_window():
    """Minutes of simulated traffic: estimates reserved up front, reconciled (downwards) when each
    request finishes 1-3 s later, 10 % throttled and given back; the tokens finally counted never
    exceed the quota in any window, and the request quota holds too."""
    rng = random.Random(11)
    rpm, tpm = 150, 200_000
    limiter, clock, condition = simulated(rpm, tpm)
    reservations = []
    for _ in range(1200):
        estimate = rng.randint(1500, 4000) + 1024  # input estimate + maxTokens
        reservation = limiter.acquire(estimate)
        reservations.append(reservation)
        if rng.random() < 0.1:
            condition.at(clock.now + rng.uniform(0.05, 0.5), lambda r=reservation: limiter.give_back(r))
        else:
            actual = int(estimate * rng.uniform(0.4, 1.0))
            condition.at(clock.now + rng.uniform(1.0, 3.0), lambda r=reservation, a=actual: limiter.reconcile(r, a))
    condition.run_until(clock.now + 10)
    starts = [r.started for r in reservations]
    assert sliding_max(starts, WINDOW_S, [r.tokens for r in reservations]) <= tpm
    assert sliding_max(starts, WINDOW_S) <= rpm
    # tokens were the binding quota here (150 x ~3.8k reserved > 200k): the window is used, not left idle
    assert sliding_max(starts, WINDOW_S, [r.tokens for r in reservations]) >= 0.5 * tpm


# --- the adaptive spacing (AIMD) ----------------------------------------------------------------------------


def test_a_throttle_widens_the_spacing_and_answers_narrow_it_back_to_the_quota():
    limiter, clock, _ = simulated(600, 10**9)
    limiter.acquire(1)
    limiter.throttled()
    assert limiter.spacing == pytest.approx(spacing(600) * THROTTLE_SLOWDOWN)
    assert limiter.acquire(1).started == pytest.approx(T0 + spacing(600))  # the request already scheduled keeps its slot
    assert limiter.acquire(1).started == pytest.approx(T0 + spacing(600) * (1 + THROTTLE_SLOWDOWN))
    for _ in range(100):
        limiter.answered()
    assert limiter.spacing == pytest.approx(spacing(600))  # never faster than the quota


def test_throttles_back_off_at_most_to_the_floor_rate():
    limiter, _, _ = simulated(600, 10**9)
    for _ in range(1000):  # every request throttled: the capacity is far below the quota
        limiter.throttled()
    assert limiter.spacing == pytest.approx(spacing(600) * MAX_SLOWDOWN)


def test_random_throttles_keep_the_rate_near_the_quota():
    """15 % of requests throttled at random (not because of the rate): the spacing stays within a few % of the quota's."""
    rng = random.Random(5)
    limiter, _, _ = simulated(600, 10**9)
    starts = []
    for _ in range(5000):
        starts.append(limiter.acquire(1).started)
        limiter.throttled() if rng.random() < 0.15 else limiter.answered()
    achieved = (len(starts) - 1) / (starts[-1] - starts[0]) * 60
    assert 0.95 * 600 <= achieved <= 600 and sliding_max(starts, WINDOW_S) <= 600


def test_throttles_that_follow_the_rate_bring_it_down_to_the_capacity():
    """Capacity 300/min under a 600/min quota: throttled whenever requests come faster than 300/min; the rate follows."""
    limiter, _, _ = simulated(600, 10**9)
    starts = [limiter.acquire(1).started]
    for _ in range(3000):
        starts.append(limiter.acquire(1).started)
        gap = starts[-1] - starts[-2]
        limiter.throttled() if gap < 60 / 300 else limiter.answered()
    tail = starts[-1000:]
    assert 0.8 * 300 <= (len(tail) - 1) / (tail[-1] - tail[0]) * 60 <= 1.1 * 300


# --- shared_limiter ----------------------------------------------------------------------------------------


def test_shared_limiter_is_one_per_quota_key():
    key = ("us-west-2", "http://shared-test", f"model-{uuid.uuid4().hex}")
    a = shared_limiter(key, 150, 400_000)
    assert shared_limiter(key, 150, 400_000) is a
    assert shared_limiter((*key[:2], key[2] + "-other"), 150, 400_000) is not a
    changed = shared_limiter(key, 300, 400_000)
    assert changed is not a and changed.requests_per_minute == 300


# --- real threads, simulated time ---------------------------------------------------------------------------


def run_threads(targets, guard: float = HANG_GUARD_S) -> None:
    threads = [threading.Thread(target=target) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=guard)  # a hang guard only
    assert not [thread for thread in threads if thread.is_alive()], "a thread is still waiting"


def test_many_threads_stay_evenly_spaced():
    """Real threads contend for one limiter (a barrier lets them all in before the first request); time is
    simulated and moves on only when every thread waits, so the verdict is on exact start times."""
    rpm, n_threads, per_thread = 6000, 8, 40
    time = VirtualTime(T0)
    limiter = RateLimiter(rpm, 10**12, clock=time, condition=time.condition())
    starts: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(n_threads)
    errors: list[BaseException] = []

    def worker():
        try:
            with time.participant():
                barrier.wait(timeout=HANG_GUARD_S)
                for _ in range(per_thread):
                    reservation = limiter.acquire(100)
                    with lock:
                        starts.append(reservation.started)
        except BaseException as error:  # reported by the test thread
            errors.append(error)

    run_threads([worker] * n_threads)
    assert not errors
    assert len(starts) == n_threads * per_thread
    starts.sort()
    assert starts[0] == T0
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert min(gaps) >= spacing(rpm) * (1 - 1e-9)
    assert max(gaps) == pytest.approx(spacing(rpm))  # no slower than needed either: a thread always waits for the next slot
    for k in (1, 10, 50):  # no window of k spacings ever holds more than k starts
        assert sliding_max(starts, WINDOW_S / rpm * k) <= k
    assert time.waits >= len(starts) - 1  # the threads did wait for each other


def test_a_give_back_from_another_thread_wakes_a_waiting_thread():
    time = VirtualTime(T0)
    limiter = RateLimiter(6000, 1000, clock=time, condition=time.condition())
    throttled = limiter.acquire(1000)
    started: list[float] = []
    with time.participant():  # time stands still while this thread drives the test
        waiter = threading.Thread(target=lambda: started.append(limiter.acquire(1000).started))
        waiter.start()
        assert time.wait_for_waiters(1)
        assert not started  # waiting for tokens
        time.advance(5.0)  # the 429 arrives 5 s later
        assert not started
        limiter.give_back(throttled)
        waiter.join(timeout=HANG_GUARD_S)
    assert not waiter.is_alive()
    assert started == [pytest.approx(T0 + 5.0)]  # at once, not after the 60 s the window would take


def test_window_constant_is_sixty_seconds():
    assert limiter_module.WINDOW_S == 60.0
