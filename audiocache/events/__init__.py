"""Batch progress as Server-Sent Events (django-eventstream).

``payload.py`` is what an event says (the seed's schema, and a batch's counts), ``sending.py``
sends events (stored for replay, delivered live in-process or through Redis, throttled per
batch) and lets code in the same process listen to them, ``access.py`` decides who may read
a batch's channel.
"""
