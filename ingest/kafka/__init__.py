"""The Kafka side of the bus: producer, consumers and topic admin on confluent-kafka."""
from ingest.kafka.admin import STREAMS, check_broker, delete_topics, ensure_topics
from ingest.kafka.consumer import KafkaConsumer, end_offsets, read_topic
from ingest.kafka.producer import DeliveryError, KafkaProducer, topic_name

__all__ = ["STREAMS", "DeliveryError", "KafkaConsumer", "KafkaProducer", "check_broker", "delete_topics",
           "end_offsets", "ensure_topics", "read_topic", "topic_name"]
