"""The one exception type for errors a user can act on."""


class GNMError(Exception):
    """An error with one clear sentence saying what was wrong and what to do.

    The CLI prints its message (no traceback) and exits with status 2.
    """
