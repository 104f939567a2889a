import enum


class SensorType(enum.Enum):
    NONE = 0
    COLOR = 1
    DEPTH = 2
    SEMANTIC = 3


class SensorSubType(enum.Enum):
    NONE = 0
    PINHOLE = 1
    ORTHOGRAPHIC = 2


class CameraSensorSpec:
    def __init__(self):
        self.uuid = ""
        self.sensor_type = SensorType.NONE
        self.sensor_subtype = SensorSubType.PINHOLE
        self.resolution = [128, 128]
        self.position = [0.0, 1.5, 0.0]
        self.hfov = 90.0
        self.channels = 4
