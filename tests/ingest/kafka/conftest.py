"""Real Kafka for the Kafka-layer tests: started by scripts/services/kafka.sh, never skipped."""
from __future__ import annotations

import os
import uuid

import pytest

from ingest.kafka.admin import check_broker, delete_topics


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    try:
        check_broker(bootstrap, timeout_s=10)
    except Exception as exc:  # noqa: BLE001 - any failure means no broker
        pytest.fail(f"Kafka is not reachable at {bootstrap} ({exc}); start it with "
                    "`scripts/services/kafka.sh start` or run the suite through scripts/test.sh", pytrace=False)
    return bootstrap


@pytest.fixture
def topic_prefix(kafka_bootstrap: str):
    prefix = f"t{uuid.uuid4().hex[:10]}."
    yield prefix
    delete_topics(kafka_bootstrap, prefix)
