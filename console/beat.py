"""Beat on several hosts, scheduling once: RedBeat's single-beat lock.

Every host may start ``celery beat``; the schedule (with each entry's last
run) lives in Redis, and only the beat holding the lock in Redis sends
anything. The others wait for the lock, so that when the host holding it
dies, another takes over within ``BEAT_LOCK_TIMEOUT`` seconds and goes on
from the last runs recorded in Redis.

RedBeat's own scheduler stops beat when the lock cannot be extended: Redis
unreachable for a moment, or restarted without its data (the lock gone).
Here beat rides both out: while Redis is away it sends nothing and asks
again; when its lock is gone or taken, it waits for the lock like a beat
that just started, and never sends while another beat holds it; when Redis
lost the schedule itself, beat installs it again from the settings.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from redbeat import RedBeatScheduler
from redbeat.schedulers import acquire_distributed_beat_lock, get_redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import LockError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger("celery.beat")

# How long beat waits before asking an unreachable Redis again.
RETRY_SECONDS = 1.0


class SingleBeatScheduler(RedBeatScheduler):  # type: ignore[misc]
    """RedBeat's scheduler, kept alive through Redis outages and lock losses."""

    lock: Any  # redis-py's Lock while this beat holds the schedule, else None
    lock_key: str

    def __init__(self, app: Any, **kwargs: Any) -> None:
        # RedBeat looks for its settings under their bare names, not under
        # Django's CELERY_ namespace, and warns that it falls back to the
        # broker's; name them so (the values are the settings').
        for name in ("redbeat_redis_url", "redbeat_redis_options"):
            app.conf[name] = app.conf.get(name)
        super().__init__(app, **kwargs)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        if self.lock_key and self.lock is None:
            # Redis was away when this beat started, or it lost the lock:
            # wait for the lock (blocking), as a beat that just started does.
            self._hold_lock()
        try:
            self._restore_schedule()
            return float(super().tick(*args, **kwargs))
        except (RedisConnectionError, RedisTimeoutError):
            logger.warning("beat: Redis cannot be reached; nothing sent, asking again in %s s", RETRY_SECONDS)
            return RETRY_SECONDS
        except LockError:
            logger.warning("beat: lost the schedule lock (it expired, or Redis lost it); waiting to hold it again")
            self.lock = None
            return 0.0

    def _restore_schedule(self) -> None:
        """Install the schedule again when Redis lost it (restarted without
        its data): RedBeat installs it only as beat starts, and a beat with
        no entries would send nothing, the reaper included, for good."""
        if not get_redis(self.app).exists(self.app.redbeat_conf.schedule_key):
            logger.warning("beat: the schedule is not in Redis (it restarted without its data); installing it again")
            self.setup_schedule()

    def _hold_lock(self) -> None:
        while self.lock is None:
            try:
                acquire_distributed_beat_lock(_Sender(self))
            except (RedisConnectionError, RedisTimeoutError):
                logger.warning("beat: Redis cannot be reached to take the schedule lock; asking again")
                time.sleep(RETRY_SECONDS)


class _Sender:
    """What RedBeat's lock function reads from beat's service: its scheduler."""

    def __init__(self, scheduler: SingleBeatScheduler) -> None:
        self.scheduler = scheduler
