"""Helpers of the component tests: request bodies, calls and handles, one module per service."""
