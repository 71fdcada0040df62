"""argparse helpers for the command-line scripts: a bad value is argparse's usage error naming its flag.

    parser.add_argument('--epochs', type=positive_int)
    parser.add_argument('--n-test', type=non_negative_int)
    parser.add_argument('--hflip', type=probability)
    ...
    args = parser.parse_args()
    require_distinct(parser, ('--seeds', args.seeds))
"""
import argparse
import math
from typing import List, Optional, Sequence, Tuple

__all__ = [
    'positive_int', 'non_negative_int', 'finite_float', 'non_negative_float', 'positive_float', 'probability',
    'decay_rate', 'percent', 'require_distinct', 'repeated',
]


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


def _float_in(text: str, what: str, low: Optional[float] = None, high: Optional[float] = None,
              low_open: bool = False, high_open: bool = False) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected {what}, got {text!r}') from None
    if not math.isfinite(value) or (low is not None and (value <= low if low_open else value < low)) or (
            high is not None and (value >= high if high_open else value > high)):
        raise argparse.ArgumentTypeError(f'expected {what}, got {text}')
    return value


def finite_float(text: str) -> float:
    """argparse type: a finite number (no nan / inf)."""
    return _float_in(text, 'a finite number')


def non_negative_float(text: str) -> float:
    """argparse type: a finite number >= 0."""
    return _float_in(text, 'a finite number >= 0', low=0.0)


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    return _float_in(text, 'a finite number > 0', low=0.0, low_open=True)


def probability(text: str) -> float:
    """argparse type: a number in [0, 1]."""
    return _float_in(text, 'a number in [0, 1]', low=0.0, high=1.0)


def decay_rate(text: str) -> float:
    """argparse type: a number in [0, 1) (an EMA decay or a label smoothing)."""
    return _float_in(text, 'a number in [0, 1)', low=0.0, high=1.0, high_open=True)


def percent(text: str) -> float:
    """argparse type: a number in [0, 100]."""
    return _float_in(text, 'a percentage in [0, 100]', low=0.0, high=100.0)


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
