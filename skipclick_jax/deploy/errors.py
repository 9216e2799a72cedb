"""The error raised when a checkpoint or a request cannot be expressed in a deployment format."""


class UnsupportedExport(ValueError):
    """The export cannot be written in the requested format (nothing was written)."""
