"""The audio cache: lossless tracks transcoded once into MP3 renditions, and streamed.

Start at docs/architecture.md. The doors are ``services`` (decisions and writes) and
``selectors`` (reads); behind them, one package per job: ``transcode/`` (ffmpeg and MP3
frames), ``queue/`` (tasks, batches, the worker pool), ``events/`` (progress as Server-Sent
Events) and ``delivery/`` (bytes to listeners over HTTP). ``seed_api`` keeps the seed
design's names as thin wrappers.
"""
