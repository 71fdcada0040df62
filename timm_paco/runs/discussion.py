"""Generated write-ups with a hand-written part: a Markdown file rewritten from results keeps the text of its
``## Discussion`` section (between ``DISCUSSION_BEGIN`` and ``DISCUSSION_END``) from its last version."""
import os
from typing import List

__all__ = ['DISCUSSION_BEGIN', 'DISCUSSION_END', 'write_with_discussion']

DISCUSSION_BEGIN = '<!-- discussion: kept when the script rewrites this file -->'
DISCUSSION_END = '<!-- end of discussion -->'


def _kept_discussion(path: str) -> str:
    if not os.path.isfile(path):
        return ''
    with open(path) as f:
        text = f.read()
    if DISCUSSION_BEGIN in text and DISCUSSION_END in text:
        return text[text.index(DISCUSSION_BEGIN) + len(DISCUSSION_BEGIN):text.index(DISCUSSION_END)].strip('\n')
    return ''


def write_with_discussion(path: str, lines: List[str]):
    """Write ``lines`` to ``path``, then a ``## Discussion`` section whose text is kept from the file's last
    version: generated tables, hand-written reading."""
    lines = lines + ['## Discussion', '', DISCUSSION_BEGIN, _kept_discussion(path), DISCUSSION_END, '']
    with open(path, 'w') as f:
        f.write('\n'.join(lines))
