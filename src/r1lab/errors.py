"""User-facing errors: the CLI prints them as one line (no traceback) and exits non-zero.

Raise these for anything a user can fix (a bad config key, a missing file, a checkpoint that does not
match the model); let programming errors surface as ordinary exceptions.
"""


class R1labError(Exception):
    """An error caused by the user's input; its message is one self-contained line."""


class ConfigError(R1labError):
    """A config file or override is missing, malformed or names an unknown key."""


class CheckpointError(R1labError):
    """A checkpoint directory does not match what is being loaded (keys, shapes, dtypes)."""


class DataError(R1labError):
    """A dataset file or record is malformed."""
