"""The test suite. Its layout mirrors the code:

- the top level mirrors ``audiocache/``'s own modules (test_models.py, test_seed_api.py,
  test_date_probing.py) and its packages have folders of the same names: transcode/, queue/,
  events/, delivery/, services/, admin/, and commands/ for its management commands;
- mixtapes/ and config/ mirror those two apps;
- test_security.py and test_hostile_input.py cross every package;
- e2e/ runs real servers, workers, browsers and nginx; stress/ is ``make stress`` only.

Fixtures and helpers shared by several folders are in conftest.py (the nearest common one):
pytest finds the fixtures, and plain helpers are imported from it, never from a test module.
"""
