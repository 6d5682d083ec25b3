"""The transcode queue and the workers that drain it.

``tasks.py`` keeps the queue in ``CacheTask`` rows (enqueue, claim, lease, finish, retry,
cancel; the claim itself is per database, in ``claim/``), ``batches.py`` groups a precache
request's tasks and counts how they end, ``pool.py`` runs the worker threads, ``doorbell.py``
wakes idle workers when work is queued (in this process, and in others through Redis), and
``lifespan.py`` starts the pool inside the web process.
"""
