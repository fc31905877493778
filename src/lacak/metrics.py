"""Prometheus metrics, one registry per app (or the multiprocess collector under workers)."""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

WEBHOOK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0)
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "lacak_http_requests",
            "HTTP requests by route and status",
            ["method", "route", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "lacak_http_request_seconds",
            "HTTP request latency by route",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.lookups = Counter("lacak_tracking_lookups", "Tracking lookups by result", ["result"], registry=r)
        # Bound once: label lookups cost more than the increment on the tracking hot path.
        self.lookups_found = self.lookups.labels("found")
        self.lookups_missing = self.lookups.labels("not_found")
        self.state_changes = Counter(
            "lacak_state_changes",
            "Order state change requests by target state and outcome",
            ["state", "outcome"],
            registry=r,
        )
        self.orders_created = Counter("lacak_orders_created", "Orders created", registry=r)
        self.courier_events = Counter(
            "lacak_courier_events",
            "Inbound courier messages by provider and outcome"
            " (applied, stale, duplicate, refused, unknown_order, unknown_status)",
            ["provider", "outcome"],
            registry=r,
        )
        self.driver_positions = Counter(
            "lacak_driver_positions", "Driver position points stored", ["source"], registry=r
        )

        self.webhook_attempts = Counter(
            "lacak_webhook_attempts",
            "Webhook delivery attempts by outcome (delivered, retry, failed, disabled)",
            ["outcome"],
            registry=r,
        )
        self.webhook_latency = Histogram(
            "lacak_webhook_attempt_seconds",
            "Time from sending a webhook to its answer (or error)",
            buckets=WEBHOOK_BUCKETS,
            registry=r,
        )
        # Every process computes these from the database, so under several workers any one
        # live process's value is the answer ("livemax").
        self.webhook_queue_depth = Gauge(
            "lacak_webhook_queue_depth",
            "Deliveries waiting to be sent (pending)",
            multiprocess_mode="livemax",
            registry=r,
        )
        self.webhook_oldest_pending = Gauge(
            "lacak_webhook_oldest_pending_seconds",
            "Age of the oldest pending delivery",
            multiprocess_mode="livemax",
            registry=r,
        )
        self.webhook_disabled_endpoints = Gauge(
            "lacak_webhook_disabled_endpoints",
            "Merchant webhook endpoints currently disabled",
            multiprocess_mode="livemax",
            registry=r,
        )
        self.live_streams = Gauge(
            "lacak_live_streams",
            "Live-page event streams open",
            multiprocess_mode="livesum",
            registry=r,
        )

    def render(self) -> bytes:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            # Under several worker processes each keeps its own numbers in shared files.
            merged = CollectorRegistry()
            MultiProcessCollector(merged)  # type: ignore[no-untyped-call]  # unannotated upstream
            return generate_latest(merged)
        return generate_latest(self.registry)
