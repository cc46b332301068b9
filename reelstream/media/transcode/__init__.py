"""Chunked transcoding: the ladder, the 2-second grid, ffmpeg command builders and the chunk encoder."""
