"""Vision processors for roadside cameras: frames in, CameraObservation per interval out."""
from stream.vision.annotate import annotate
from stream.vision.evaluate import DetectionScore, iou_matrix, match_boxes
from stream.vision.evidence import SegmentEvidence, segment_evidence
from stream.vision.processor import VisionConfig, VisionProcessor

__all__ = ["DetectionScore", "SegmentEvidence", "VisionConfig", "VisionProcessor", "annotate", "iou_matrix",
           "match_boxes", "segment_evidence"]
