"""Management commands of the audio cache: precache, cacheworker, cacheclean, cachedebug."""
