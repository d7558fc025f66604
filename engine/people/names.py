"""People's names as staff search and match them.

`fold_for_search` folds width, kana kind and spaces. Matching (名寄せ) and the case list's search fold further:
the common 異体字 of family and given names to the form a window usually types (髙→高, 﨑→崎, 𠮷→吉, 齋・齊・斉→斎 …)
and ヴ to the ブ row, so that 髙橋 and 高橋, or ヴィクトル and ビクトル, are the same key (`name_key`, `kana_key`).
A key only proposes a candidate: whether two records are one person is for staff to decide.
"""
from __future__ import annotations

import unicodedata

# Old or variant forms (異体字) → the form in common use. NFKC already folds the compatibility ideographs
# (U+F900…), except the twelve unified ones in that block (﨑 …), which are listed here.
VARIANTS = str.maketrans({
    "髙": "高", "﨑": "崎", "嵜": "崎", "𠮷": "吉", "齋": "斎", "齊": "斎", "斉": "斎", "邊": "辺", "邉": "辺",
    "澤": "沢", "濱": "浜", "濵": "浜", "櫻": "桜", "廣": "広", "國": "国", "德": "徳", "惠": "恵", "眞": "真",
    "嶋": "島", "嶌": "島", "槇": "槙", "冨": "富", "藏": "蔵", "實": "実", "壽": "寿", "會": "会", "條": "条",
    "學": "学", "來": "来", "淺": "浅", "瀨": "瀬", "龍": "竜", "黑": "黒", "曾": "曽", "彌": "弥", "與": "与",
    "圓": "円", "萬": "万", "舘": "館", "峯": "峰", "栁": "柳", "桒": "桑", "禮": "礼",
    "薗": "園", "籠": "篭", "驒": "騨", "鷗": "鴎", "兒": "児", "彥": "彦", "莊": "荘",
})
# ヴ (and its small-vowel syllables) read as the バ row: ヴィクトル and ビクトル are written both ways.
_VU = (("ゔぁ", "ば"), ("ゔぃ", "び"), ("ゔぇ", "べ"), ("ゔぉ", "ぼ"), ("ゔ", "ぶ"))
_DROP = str.maketrans("", "", " ・･.=＝-‐")


def _hiragana(s: str) -> str:
    return "".join(chr(ord(c) - 0x60) if "ァ" <= c <= "ヶ" or c == "ヴ" else c for c in s)


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


def match_key(text: str | None) -> str:
    """A name or its kana folded for matching (名寄せ): NFKC, 異体字 to the common form, katakana → hiragana,
    ヴ → ブ, no spaces or middle dots, lower case. "" for nothing."""
    if not text:
        return ""
    s = unicodedata.normalize("NFKC", text).lower().translate(VARIANTS)
    s = _hiragana("".join(s.split()).translate(_DROP))
    for vu, b in _VU:
        s = s.replace(vu, b)
    return s
