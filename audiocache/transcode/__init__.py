"""Turning one lossless file into one MP3 rendition with ffmpeg (``ffmpeg.py``), and the MP3
frame arithmetic that tells a rendition's final size while ffmpeg is still writing it
(``mp3.py``). Nothing here knows about the queue, the database or HTTP."""
