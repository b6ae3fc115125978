"""The test suite of vexora-async: a package, so tests import ``tests.helpers``."""
