"""Smoke tests run as scripts by nox (``minimal``, ``package``), not by pytest."""
