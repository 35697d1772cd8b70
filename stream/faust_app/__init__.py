"""The Kafka runtime: a faust-streaming app whose agents run the same core stages as ``stream.embedded``."""
from stream.faust_app.app import FaustRuntime, WorkerConfig, build_runtime, run_worker
from stream.faust_app.state import CorridorPartition, InMessage, StationPartition, partition_of

__all__ = ["CorridorPartition", "FaustRuntime", "InMessage", "StationPartition", "WorkerConfig", "build_runtime",
           "partition_of", "run_worker"]
