"""Long text folded on the pages: a note of 10,000 characters shows its first lines and a 全文を表示 that opens
the rest (a <details>, no script), instead of one block several screens high."""
from __future__ import annotations

FOLD_CHARS = 400  # a text longer than this, or of more lines than FOLD_LINES, is folded
FOLD_LINES = 8
HEAD_LINES = 4  # what a folded text shows: its first lines, at most HEAD_CHARS characters
HEAD_CHARS = 200


def text_head(text: str | None) -> str | None:
    """The beginning a folded `text` shows, or None when it is short enough to show whole."""
    if not text:
        return None
    lines = text.splitlines()
    if len(text) <= FOLD_CHARS and len(lines) <= FOLD_LINES:
        return None
    return "\n".join(lines[:HEAD_LINES])[:HEAD_CHARS].rstrip()
