"""Pigeon: a self-hosted global SMS aggregator."""

__version__ = "0.1.0"
