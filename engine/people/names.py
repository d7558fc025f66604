"""People's names as staff search and match them: width, kana kind and spaces folded."""
from __future__ import annotations

import unicodedata


def fold_for_search(*texts: str | None) -> str:
    """Fold names for search: NFKC (全角/半角), katakana → hiragana, no spaces, lower case."""
    out = []
    for t in texts:
        if not t:
            continue
        s = unicodedata.normalize("NFKC", t).lower()
        s = "".join(chr(ord(c) - 0x60) if "ァ" <= c <= "ヶ" else c for c in s)
        out.append("".join(s.split()))
    return " ".join(out)
