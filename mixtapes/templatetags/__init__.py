"""Template filters of the pages (``duration``)."""
