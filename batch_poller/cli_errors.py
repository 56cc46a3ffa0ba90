"""The one error the CLI's commands raise for the user to read."""


class CommandError(Exception):
    """A refusal with a message for the user; the command exits with `exit_code`."""

    exit_code = 1
