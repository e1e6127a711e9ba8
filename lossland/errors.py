"""User-facing errors: printed as one line (no traceback) by the command-line entry points."""


class LosslandError(Exception):
    """A problem with the user's input (config, data, checkpoint), reported as one clear line."""


class DataError(LosslandError):
    """Missing or unreadable data."""
