"""vital_ray: Ray-native training and serving of video-language models that think with videos."""

__version__ = "0.1.0"
