"""``/metrics`` in Prometheus text format: writes, commits, subscribers, event lag."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..store import Store

__all__ = ["Metrics"]


@dataclass
class Metrics:
    """Counters the server keeps next to the store's own."""

    started: float = field(default_factory=time.monotonic)
    requests: dict[str, int] = field(default_factory=dict)
    streams_open: int = 0
    events_sent: int = 0
    lag_ms_sum: float = 0.0
    lag_ms_max: float = 0.0
    lag_count: int = 0

    def record_lag(self, commit_ms: int) -> None:
        if commit_ms:
            lag = max(0.0, time.time() * 1000 - commit_ms)
            self.lag_ms_sum += lag
            self.lag_count += 1
            self.lag_ms_max = max(self.lag_ms_max, lag)

    def render(self, store: Store) -> str:
        stats = store.writer.stats
        uptime = max(time.monotonic() - self.started, 1e-9)
        lines = [
            "# HELP elkyn_writes_total Writes committed.",
            "# TYPE elkyn_writes_total counter",
            f"elkyn_writes_total {stats.writes}",
            "# HELP elkyn_writes_per_second Average committed writes per second since start.",
            "# TYPE elkyn_writes_per_second gauge",
            f"elkyn_writes_per_second {stats.writes / uptime:.3f}",
            "# HELP elkyn_commits_total LMDB commits (each shared by a group of writes).",
            "# TYPE elkyn_commits_total counter",
            f"elkyn_commits_total {stats.commits}",
            "# HELP elkyn_writes_failed_total Writes refused (bad data, rules, ETag).",
            "# TYPE elkyn_writes_failed_total counter",
            f"elkyn_writes_failed_total {stats.failed}",
            "# HELP elkyn_subscribers Open watchers (streams and embedded watches).",
            "# TYPE elkyn_subscribers gauge",
            f"elkyn_subscribers {store.hub.count()}",
            "# HELP elkyn_streams_open Open SSE streams on this server.",
            "# TYPE elkyn_streams_open gauge",
            f"elkyn_streams_open {self.streams_open}",
            "# HELP elkyn_events_sent_total Stream events sent.",
            "# TYPE elkyn_events_sent_total counter",
            f"elkyn_events_sent_total {self.events_sent}",
            "# HELP elkyn_event_lag_ms Commit to stream write, milliseconds.",
            "# TYPE elkyn_event_lag_ms summary",
            f"elkyn_event_lag_ms_sum {self.lag_ms_sum:.3f}",
            f"elkyn_event_lag_ms_count {self.lag_count}",
            "# HELP elkyn_event_lag_ms_max Largest commit to stream write lag seen.",
            "# TYPE elkyn_event_lag_ms_max gauge",
            f"elkyn_event_lag_ms_max {self.lag_ms_max:.3f}",
            "# HELP elkyn_last_seq Sequence number of the last committed change.",
            "# TYPE elkyn_last_seq gauge",
            f"elkyn_last_seq {store.last_seq()}",
            "# HELP elkyn_map_size_bytes LMDB map size.",
            "# TYPE elkyn_map_size_bytes gauge",
            f"elkyn_map_size_bytes {store.env.map_size()}",
        ]
        for method, n in sorted(self.requests.items()):
            lines.append(f'elkyn_requests_total{{method="{method}"}} {n}')
        return "\n".join(lines) + "\n"
