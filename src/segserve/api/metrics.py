"""Prometheus metrics, one `CollectorRegistry` per app so several apps (tests) never collide."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

CONTENT_TYPE = CONTENT_TYPE_LATEST

# Seconds: from a cached 20 ms answer to a many-concept 4K image on CPU.
_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


class _EngineStatsCollector(Collector):
    """Exposes the segmenter's own counters (`stats` dict: vision passes, cache hits, ...) if it has any."""

    def __init__(self, get_stats: Callable[[], dict[str, Any] | None]):
        self._get_stats = get_stats

    def collect(self) -> Iterable[CounterMetricFamily]:
        stats = self._get_stats() or {}
        for key, value in sorted(stats.items()):
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                name = "segserve_engine_" + "".join(c if c.isalnum() else "_" for c in key)
                yield CounterMetricFamily(name, f"Engine counter {key!r}.", value=value)


class Metrics:
    def __init__(self, get_engine_stats: Callable[[], dict[str, Any] | None] = lambda: None):
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "segserve_requests",
            "HTTP requests answered, by route, status and error code ('' for successes).",
            ["method", "route", "status", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "segserve_request_seconds",
            "Time from request start to response start.",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "segserve_queue_depth", "Requests waiting for an inference worker.", registry=self.registry
        )
        self.running = Gauge("segserve_inference_running", "Inferences running now.", registry=self.registry)
        self.inference = Histogram(
            "segserve_inference_seconds",
            "Time the segmenter spent on one request (model only, no decoding or encoding).",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_EngineStatsCollector(get_engine_stats))

    def render(self) -> bytes:
        return generate_latest(self.registry)
