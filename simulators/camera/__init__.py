"""Simulated roadside cameras: frames of a road section consistent with a traffic state, with ground truth."""
from simulators.camera.geometry import CameraPose, make_calibration, oblique_pose, top_down_pose
from simulators.camera.render import LIGHTING, WEATHER, Conditions, encode_jpeg
from simulators.camera.simulator import CameraSimulator, FrameTruth, SimFrame, SimulatedCamera, simulated_camera
from simulators.camera.source import CameraSource, CameraState, scale_burst_counts
from simulators.camera.traffic import IncidentSpec

__all__ = ["CameraPose", "CameraSource", "CameraState", "scale_burst_counts", "CameraSimulator", "Conditions", "FrameTruth", "IncidentSpec", "LIGHTING", "SimFrame",
           "SimulatedCamera", "WEATHER", "encode_jpeg", "make_calibration", "oblique_pose", "simulated_camera",
           "top_down_pose"]
