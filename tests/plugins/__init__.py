"""Shared pytest fixtures, registered once in tests/conftest.py (``pytest_plugins``)."""
