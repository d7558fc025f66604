"""The case machine drawn as an inline SVG, server-side, from engine.states.CASE_TRANSITIONS.

No script and no style attribute (the pages' CSP allows neither): shapes carry classes that
tsunagu.css colours. The main path runs left to right; a transition forward past its neighbour arcs
above the row, one going back arcs below it, and every open state has a dashed line down to 終結.
The current state is filled; the transitions the reader may take from it now are drawn bold.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Iterable

from markupsafe import Markup, escape

from engine import states

ORDER = ["intake", "handoff", "assigned", "support_meeting", "consent", "layered_meeting", "accompaniment",
         "suspended"]
BOX_W, BOX_H, STEP, MARGIN = 124, 44, 136, 16
TOP = 112  # top of the row of boxes
BAR_Y = 300  # top of the 終結 bar
BAR_H = 36
WIDTH = MARGIN * 2 + STEP * (len(ORDER) - 1) + BOX_W
HEIGHT = BAR_Y + BAR_H + MARGIN


def _cx(state: str) -> float:
    return MARGIN + BOX_W / 2 + STEP * ORDER.index(state)


def edges() -> "OrderedDict[tuple[str, str], list[str]]":
    """(source, dest) → the events drawn along it, in the table's order; self-loops left out."""
    out: OrderedDict[tuple[str, str], list[str]] = OrderedDict()
    for t in states.CASE_TRANSITIONS:
        for src in t["source"]:
            if src == t["dest"]:
                continue
            names = out.setdefault((src, t["dest"]), [])
            if t["trigger"] not in names:
                names.append(t["trigger"])
    return out


def _path(src: str, dst: str) -> str:
    bottom = TOP + BOX_H
    if dst == "closed":
        x = _cx(src)
        return f"M{x:.0f},{bottom} L{x:.0f},{BAR_Y - 2}"
    if src == "closed":
        x = _cx(dst) - BOX_W / 2 + 12
        return f"M{x:.0f},{BAR_Y} L{x:.0f},{bottom + 2}"
    i, j = ORDER.index(src), ORDER.index(dst)
    mid_y = TOP + BOX_H / 2
    if j == i + 1:
        x1, x2 = _cx(src) + BOX_W / 2, _cx(dst) - BOX_W / 2 - 2
        return f"M{x1:.0f},{mid_y:.0f} L{x2:.0f},{mid_y:.0f}"
    distance = abs(j - i)
    bulge = 40 + 34 * distance
    if j > i:  # forward past a neighbour: above the row
        x1, x2 = _cx(src) + 14, _cx(dst) - 14
        return f"M{x1:.0f},{TOP} Q{(x1 + x2) / 2:.0f},{TOP - bulge} {x2:.0f},{TOP - 2}"
    x1, x2 = _cx(src) - 14, _cx(dst) + 14  # back: below the row
    return f"M{x1:.0f},{bottom} Q{(x1 + x2) / 2:.0f},{bottom + bulge * 0.8:.0f} {x2:.0f},{bottom + 2}"


def render(current: str, allowed_events: Iterable[str] = (), visited: Iterable[str] = ()) -> Markup:
    """The SVG of the case machine with `current` highlighted and the reader's next steps in bold."""
    allowed = set(allowed_events)
    seen = set(visited)
    label = states.CASE_STATE_LABELS[current]
    parts = [
        f'<svg class="machine" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="machine-title machine-desc"'
        ' xmlns="http://www.w3.org/2000/svg">',
        f'<title id="machine-title">ケースの段階（現在: {escape(label)}）</title>',
        '<desc id="machine-desc">受付からつなぐシート、担当決定、支援会議、同意確認、重層的支援会議、伴走支援までの流れと、'
        'どの段階からも終結できることを示す図。太い矢印は今あなたが行える操作です。</desc>',
        '<defs>',
        '<marker id="arrow" class="arrowhead" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7"'
        ' orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z"/></marker>',
        '<marker id="arrow-next" class="arrowhead next" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6"'
        ' markerHeight="6" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z"/></marker>',
        '</defs>',
    ]
    for (src, dst), events in edges().items():
        kind = "edge"
        if src == current:
            kind += " from-current"
            if allowed.intersection(events):
                kind += " next"
        if dst == "closed" or src == "closed":
            kind += " to-closed" if dst == "closed" else " reopen"
        marker = "arrow-next" if " next" in kind else "arrow"
        names = "・".join(states.CASE_EVENT_LABELS[e] for e in events)
        parts.append(f'<path class="{kind}" d="{_path(src, dst)}" marker-end="url(#{marker})">'
                     f'<title>{escape(names)}</title></path>')
    for state in ORDER:
        x = _cx(state) - BOX_W / 2
        cls = "state-box" + (" current" if state == current else "") + (" visited" if state in seen else "")
        parts.append(f'<g class="{cls}"><rect x="{x:.0f}" y="{TOP}" width="{BOX_W}" height="{BOX_H}" rx="6"/>'
                     f'<text x="{_cx(state):.0f}" y="{TOP + BOX_H / 2 + 5:.0f}" text-anchor="middle">'
                     f'{escape(states.CASE_STATE_LABELS[state])}</text></g>')
    cls = "state-box closed-bar" + (" current" if current == "closed" else "") + (" visited" if "closed" in seen else "")
    parts.append(f'<g class="{cls}"><rect x="{MARGIN}" y="{BAR_Y}" width="{WIDTH - 2 * MARGIN}" height="{BAR_H}" rx="6"/>'
                 f'<text x="{WIDTH / 2:.0f}" y="{BAR_Y + BAR_H / 2 + 5:.0f}" text-anchor="middle">'
                 f'{escape(states.CASE_STATE_LABELS["closed"])}（どの段階からでも理由を付けて終結）</text></g>')
    parts.append("</svg>")
    return Markup("".join(parts))
