"""``UsageError``: a flag value or combination the run refuses; the drivers report it as argparse's usage error
(one line on stderr, exit code 2) before anything is written."""

__all__ = ['UsageError']


class UsageError(ValueError):
    """A refused flag value or combination; the message names the flag and the fix."""
