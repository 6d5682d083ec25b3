"""Getting the bytes of one audio file to a listener over HTTP.

``ranges.py`` and ``conditional.py`` read the request (Range, If-*), ``files.py`` opens and
reads files without stalling the event loop, ``growing.py`` reads a file ffmpeg is still
writing, ``response.py`` is the one typed file response (``AudioFileResponse`` carrying a
``FileBody``), ``backends/`` sends it from the app or hands it to nginx (chosen by
``AUDIO_CACHE_SENDFILE``, as Django picks a session backend), ``fast_path.py`` runs
``/stream/`` through Django's own middleware in one thread hop under ASGI, ``sender.py`` puts
a file response on the wire (zero-copy where the server offers it) and ``zerocopy.py`` is the
uvicorn protocol that offers it. Nothing here decides *which* file answers a request: the
services do, and hand over a ``StoredFile`` or a ``GrowingFile``.
"""
