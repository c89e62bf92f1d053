"""Errors that reach the user as one clear line (file name and problem), never a traceback."""

import sys


class UserError(Exception):
    """Bad input or set-up: the CLI prints it as one line and exits with status 2."""


class InputFileError(UserError):
    """A specific file is unreadable or wrong; the message starts with the file's name."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class OutputFileError(UserError, OSError):
    """A file cannot be written (read-only folder, full disk, name too long ...): the job stops.
    Also an OSError, so code that handles a failed write as one keeps working."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class Interrupted(KeyboardInterrupt):
    """Stopped by a signal; ``status`` is the shell's 128 + signal number (130 Ctrl-C, 143 SIGTERM)."""

    def __init__(self, status: int = 130):
        super().__init__()
        self.status = status


def run_command(program: str, command, args) -> int:
    """Run ``command(args)`` for a CLI: a UserError becomes one line and status 2,
    Ctrl-C a short note and status 130 (the shell's convention)."""
    try:
        return int(command(args) or 0)
    except UserError as exc:
        print(f"{program}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print(f"{program}: interrupted", file=sys.stderr)
        return getattr(exc, "status", 130)
