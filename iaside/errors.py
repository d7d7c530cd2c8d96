"""One exception type for input the user can fix; the CLI prints it on one line and exits 2."""


class IasideError(Exception):
    """Bad input or configuration. The message names the culprit (file, argument, image,
    coalition) and says what to do."""
