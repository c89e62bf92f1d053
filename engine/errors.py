"""Errors that reach the user as one clear line (file name and problem), never a traceback."""


class UserError(Exception):
    """Bad input or set-up: the CLI prints it as one line and exits with status 2."""


class InputFileError(UserError):
    """A specific file is unreadable or wrong; the message starts with the file's name."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")
