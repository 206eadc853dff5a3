"""The one error an export reports to its user."""


class ExportError(Exception):
    """A problem with the export request, its inputs or its outputs: one line that names it and the fix."""
