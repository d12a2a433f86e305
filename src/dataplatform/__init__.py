"""Shared library of the data platform: contracts, settings, clients and the native runtime."""

__version__ = "0.1.0"
