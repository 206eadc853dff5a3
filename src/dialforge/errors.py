"""Errors shared by every layer."""


class ConfigError(Exception):
    """A configuration problem, phrased for the person who wrote the file: where, what, and the fix."""
