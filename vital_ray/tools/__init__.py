"""The clip tool `get_video_clip_frame`, video decoding, and the tool-call parser."""
