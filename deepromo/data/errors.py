"""The base of deepromo's own error types: bad input that a user can fix, with a message that names it.

The command-line entries print these as one line and exit 2; any other exception is a bug and keeps its
traceback.
"""


class UserInputError(ValueError):
    """Bad data, config, name or file: the message names the offending thing and what was expected."""


class UnknownNameError(UserInputError, KeyError):
    """A name (of a task, view, node type, split, ...) that is not among the valid ones."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


class MissingInputError(UserInputError, FileNotFoundError):
    """An input file that is not there."""
