"""The boundary campaign's parts: a faulty proxy, a Redis of its own, the run.

``tests/test_boundary_campaign.py`` runs it; see :mod:`tests.boundary.campaign`.
"""
