"""Webhook delivery of alerts: signed POSTs, retried with bounded exponential back-off.

Each alert of a subscription with a webhook is POSTed as JSON::

    {"delivery_id": "...", "subscription_id": "...", "alert": {...alert fields...}}

with headers ``Content-Type: application/json``, ``X-Roadpulse-Delivery`` (same on
every attempt, for de-duplication), ``X-Roadpulse-Attempt`` (1, 2, ...) and
``X-Roadpulse-Signature: sha256=<hex HMAC-SHA256 of the raw body with the
subscription's secret>``. A receiver recomputes the HMAC over the bytes it got
and compares in constant time (:func:`verify`).

A 2xx answer is delivered. Connection errors, timeouts, 408, 429 and 5xx are
retried after ``base_backoff_s * 2**(attempt-1)`` seconds (capped at
``max_backoff_s``) up to ``max_attempts`` attempts; other 4xx answers are final
(the receiver refused the request). Every attempt is recorded per subscription.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 429})
MAX_RECORDS = 200


def sign(secret: str, body: bytes) -> str:
    """The ``X-Roadpulse-Signature`` value of ``body``."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, signature: str) -> bool:
    """True when ``signature`` is the signature of ``body`` with ``secret``."""
    return hmac.compare_digest(sign(secret, body), signature or "")


def backoff_s(attempt: int, base_s: float, cap_s: float) -> float:
    """Wait after failed attempt number ``attempt`` (1-based): doubling from ``base_s``, at most ``cap_s``."""
    return float(min(cap_s, base_s * 2 ** (attempt - 1)))


def should_retry(status: int | None) -> bool:
    """Retry after a transport error (None), 408, 429 or a 5xx answer."""
    return status is None or status in RETRY_STATUSES or status >= 500


@dataclass
class Delivery:
    """One alert's delivery to one webhook, with every attempt."""

    delivery_id: str
    subscription_id: str
    url: str
    alert_id: str
    attempts: list[dict[str, Any]] = field(default_factory=list)
    state: str = "pending"  # pending -> delivered | failed

    def to_dict(self) -> dict[str, Any]:
        return {"delivery_id": self.delivery_id, "subscription_id": self.subscription_id, "url": self.url,
                "alert_id": self.alert_id, "state": self.state, "attempts": list(self.attempts)}


class WebhookSender:
    """Delivers alerts on an asyncio loop (the web server's); :meth:`submit` may be called from any thread."""

    def __init__(self, max_attempts: int = 5, base_backoff_s: float = 1.0, max_backoff_s: float = 60.0,
                 timeout_s: float = 10.0) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        self.max_attempts = max_attempts
        self.base_backoff_s = base_backoff_s
        self.max_backoff_s = max_backoff_s
        self.timeout_s = timeout_s
        self.loop: asyncio.AbstractEventLoop | None = None
        self._session: aiohttp.ClientSession | None = None
        self._records: dict[str, deque[Delivery]] = {}
        self._lock = threading.Lock()
        self._tasks: set[asyncio.Task] = set()

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Deliver on ``loop`` from now on."""
        self.loop = loop

    def submit(self, url: str, secret: str, subscription_id: str, alert: dict[str, Any]) -> Delivery:
        """Queue the delivery of one alert (thread-safe); returns its record."""
        delivery = Delivery(secrets.token_hex(8), subscription_id, url, str(alert.get("alert_id", "")))
        with self._lock:
            self._records.setdefault(subscription_id, deque(maxlen=MAX_RECORDS)).append(delivery)
        body = orjson.dumps({"delivery_id": delivery.delivery_id, "subscription_id": subscription_id,
                             "alert": alert})
        if self.loop is None or self.loop.is_closed():
            delivery.state = "failed"
            delivery.attempts.append({"attempt": 0, "error": "web server not running", "status": None})
            return delivery
        self.loop.call_soon_threadsafe(self._start, delivery, secret, body)
        return delivery

    def _start(self, delivery: Delivery, secret: str, body: bytes) -> None:
        task = asyncio.ensure_future(self.deliver(delivery, secret, body))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def deliver(self, delivery: Delivery, secret: str, body: bytes) -> Delivery:
        """Attempt the POST until delivered, refused, or out of attempts."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s))
        headers = {"Content-Type": "application/json", "User-Agent": "roadpulse-webhooks/1",
                   "X-Roadpulse-Delivery": delivery.delivery_id, "X-Roadpulse-Signature": sign(secret, body)}
        for attempt in range(1, self.max_attempts + 1):
            status: int | None = None
            error = ""
            try:
                async with self._session.post(delivery.url, data=body,
                                              headers={**headers, "X-Roadpulse-Attempt": str(attempt)}) as resp:
                    status = resp.status
                    await resp.read()
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                error = f"{type(exc).__name__}: {exc}"[:200]
            delivery.attempts.append({"attempt": attempt, "status": status, "error": error,
                                      "at_ms": time.time_ns() // 1_000_000})
            if status is not None and 200 <= status < 300:
                delivery.state = "delivered"
                return delivery
            if not should_retry(status) or attempt == self.max_attempts:
                break
            await asyncio.sleep(backoff_s(attempt, self.base_backoff_s, self.max_backoff_s))
        delivery.state = "failed"
        log.warning("webhook %s for %s failed after %d attempts", delivery.url, delivery.subscription_id,
                    len(delivery.attempts))
        return delivery

    def deliveries(self, subscription_id: str) -> list[dict[str, Any]]:
        """Delivery records of a subscription, newest first."""
        with self._lock:
            return [d.to_dict() for d in reversed(self._records.get(subscription_id, ()))]

    async def close(self) -> None:
        """Cancel pending deliveries and close the HTTP session (on the loop)."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
