"""argparse helpers for the command-line scripts: a bad value is argparse's usage error naming its flag.

    parser.add_argument('--epochs', type=positive_int)
    parser.add_argument('--n-test', type=non_negative_int)
    ...
    args = parser.parse_args()
    require_distinct(parser, ('--seeds', args.seeds))
"""
import argparse
from typing import List, Optional, Sequence, Tuple

__all__ = ['positive_int', 'non_negative_int', 'require_distinct', 'repeated']


def _int_at_least(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected an integer >= {low}, got {text!r}') from None
    if value < low:
        raise argparse.ArgumentTypeError(f'expected an integer >= {low}, got {value}')
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    return _int_at_least(text, 1)


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _int_at_least(text, 0)


def repeated(values: Sequence) -> List:
    """The values that occur more than once in ``values``, in first-seen order."""
    seen, twice = set(), []
    for v in values:
        if v in seen and v not in twice:
            twice.append(v)
        seen.add(v)
    return twice


def require_distinct(parser: argparse.ArgumentParser, *flags: Tuple[str, Optional[Sequence]]) -> None:
    """``parser.error`` naming the first ``(flag, values)`` pair whose values repeat (``None`` is skipped)."""
    for flag, values in flags:
        twice = repeated(values or ())
        if twice:
            parser.error(f'{flag}: {", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in twice)} '
                         f'given more than once')
