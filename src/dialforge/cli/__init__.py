"""The ``dialforge`` command line."""
