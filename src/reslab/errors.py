"""The exceptions that reach the user as a single line.

Anything the user can fix (a bad override, missing data, an unwritable directory) is raised as `UserError` (or
its `DataError`) with a message that says what is wrong and how to fix it. The ``reslab`` command prints it as
one line and exits with status 2; any other exception is a bug and keeps its traceback.
"""


class UserError(Exception):
    """A problem with the user's input or environment, explained in one line."""


class DataError(UserError):
    """Data that is missing, truncated, corrupt or fails its checksum."""
