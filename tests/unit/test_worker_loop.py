"""``flask worker`` starts a fresh RQ worker after one quit on a Redis error, and stops when asked."""

from __future__ import annotations

from redis.exceptions import ConnectionError as RedisConnectionError

from app.cli import run_until_stopped


class FakeWorker:
    """An RQ worker whose work() ends as scripted: quit on a Redis error, raise, or stop on request."""

    def __init__(self, outcome: str) -> None:
        self.outcome = outcome
        self._stop_requested = outcome == "stop-busy"  # rq sets this when stopped mid-job …
        self._shutdown_requested_date = "now" if outcome == "stop-idle" else None  # … this when idle

    def work(self, with_scheduler: bool) -> bool:
        assert with_scheduler is False
        if self.outcome == "raise":
            raise RedisConnectionError("teardown could not reach Redis")
        return False


class FlakyRedis:
    """ping() fails ``down`` times, then answers."""

    def __init__(self, down: int) -> None:
        self.down = down
        self.pings = 0

    def ping(self) -> bool:
        self.pings += 1
        if self.pings <= self.down:
            raise RedisConnectionError("refused")
        return True


def test_a_worker_that_quit_on_redis_is_replaced_until_one_is_asked_to_stop() -> None:
    outcomes = ["quit", "raise", "stop-idle", "never"]
    started: list[str] = []

    def new_worker() -> FakeWorker:
        started.append(outcomes[len(started)])
        return FakeWorker(started[-1])

    redis = FlakyRedis(down=2)
    run_until_stopped(new_worker, redis, wait=0)
    assert started == ["quit", "raise", "stop-idle"]
    assert redis.pings == 4  # waited out two refused pings before the second worker, one before the third


def test_a_worker_stopped_mid_job_ends_the_loop() -> None:
    started: list[FakeWorker] = []

    def new_worker() -> FakeWorker:
        started.append(FakeWorker("stop-busy"))
        return started[-1]

    run_until_stopped(new_worker, FlakyRedis(down=0), wait=0)
    assert len(started) == 1
