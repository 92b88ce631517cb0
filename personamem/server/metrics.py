"""Prometheus metrics of one app: requests, latency, update queue depth and age, tokens, errors."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST


class Metrics:
    """One registry per app (several apps in one process, e.g. tests, do not collide)."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter(
            "personamem_http_requests", "HTTP requests.", ["method", "route", "status"], registry=r
        )
        self.latency = Histogram(
            "personamem_http_request_seconds",
            "HTTP request latency.",
            ["method", "route"],
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=r,
        )
        self.tokens = Counter(
            "personamem_model_tokens", "Model tokens.", ["op", "direction"], registry=r
        )
        self.model_errors = Counter(
            "personamem_model_errors", "Failed model calls.", ["op"], registry=r
        )
        self.updates = Counter(
            "personamem_memory_updates", "Memory update jobs by outcome.", ["outcome"], registry=r
        )
        self.queue_depth = Gauge(
            "personamem_update_queue_depth", "Users waiting for a memory update.", registry=r
        )
        self.queue_age = Gauge(
            "personamem_update_queue_oldest_seconds",
            "Age of the oldest waiting update job.",
            registry=r,
        )
        self.dead = Gauge(
            "personamem_update_dead_letters", "Update jobs that failed every retry.", registry=r
        )

    def watch_queue(
        self, depth: Callable[[], float], age: Callable[[], float], dead: Callable[[], float]
    ) -> None:
        """Read queue depth, age and dead letters at scrape time."""
        self.queue_depth.set_function(depth)
        self.queue_age.set_function(age)
        self.dead.set_function(dead)

    def render(self) -> bytes:
        return generate_latest(self.registry)


__all__ = ["Metrics"]
