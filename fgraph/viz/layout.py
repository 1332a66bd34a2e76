"""A layered drawing of a graph, left to right, from its topological order.

The steps of Sugiyama's method, each kept simple:

1. **Layers.** A node's column is one more than its furthest argument's
   (the longest path from the leaves); then, from the outputs back, a node
   whose uses all come later moves right, to just before its first use, so
   that a param or a side branch used late (the input of step 7 of an RNN)
   is not stretched across the whole drawing.
2. **Trunks.** An arrow that spans several columns passes through one
   waypoint per column in between. The arrows leaving one node share their
   waypoints: a node used many times (a tied param of an unrolled RNN) is
   drawn once, with one trunk that branches off to each use.
3. **Order within a column**, to reduce crossings: barycentre sweeps, left
   to right then right to left, each node moved to the mean position of its
   neighbours in the column just swept, then neighbours swapped wherever
   that removes crossings; the order with the fewest crossings wins.
4. **Positions.** Each column is one stack in that order; within it, each
   node is put as close as the spacing allows to the mean height of its
   neighbours, and each trunk's waypoint to the height of the node it
   leaves, so that trunks run straight (a least-squares fit under the
   order, solved exactly by pool adjacent violators), in a few sweeps.

Sizes come from the renderer (its text metrics); coordinates are in its
units, y growing downwards.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Mapping

import attrs
import numpy as np

#: Sweeps of each kind: enough for the graphs of a few hundred nodes this is for.
ORDER_SWEEPS = 8
POSITION_SWEEPS = 6


@attrs.frozen
class Layout:
    """Where everything goes: ``centres[key]`` of each box, ``routes[i]``
    the points arrow ``i`` passes through (from its source's right side to
    its target's left side), the ``column`` of each box, and the drawing's
    ``width`` and ``height`` (everything lies in [0, width] × [0, height]);
    ``pieces``, the routes' shared trunks as drawn (:func:`trunk_pieces`)."""

    centres: Mapping
    sizes: Mapping
    routes: tuple
    column: Mapping
    width: float
    height: float
    pieces: tuple = ()


def columns(keys, arrows) -> dict:
    """``{key: column}``: the longest path from the leaves, then every node
    with room moved right, to just before its first use."""
    args = defaultdict(list)
    users = defaultdict(list)
    for a in arrows:
        args[a.target].append(a.source)
        users[a.source].append(a.target)
    col: dict = {}
    for k in keys:  # topological order: arguments first
        col[k] = 1 + max(col[s] for s in args[k]) if args[k] else 0
    for k in reversed(keys):  # users first: each node follows its uses right
        if users[k]:
            col[k] = min(col[t] for t in users[k]) - 1
    return col


def _waypoint(source, column: int) -> tuple:
    return ("via", source, column)


def _chains(arrows, col) -> list:
    """Each arrow as the list of keys it passes: source, shared waypoints, target."""
    return [
        [a.source, *(_waypoint(a.source, c) for c in range(col[a.source] + 1, col[a.target])), a.target]
        for a in arrows
    ]


def _neighbours(chains) -> tuple[dict, dict]:
    """``(left, right)``: each key's neighbours in the column before and after."""
    left, right = defaultdict(set), defaultdict(set)
    for chain in chains:
        for u, v in itertools.pairwise(chain):
            right[u].add(v)
            left[v].add(u)
    return left, right


def _crossings(order: list, left: Mapping) -> int:
    """Arrows crossing between consecutive columns, for the order ``order``."""
    total = 0
    for prev, here in itertools.pairwise(order):
        where = {k: i for i, k in enumerate(prev)}
        pairs = np.array([(where[u], j) for j, v in enumerate(here) for u in left[v] if u in where], dtype=float)
        if len(pairs) > 1:
            u, v = pairs[:, 0], pairs[:, 1]
            total += int(np.sum((u[:, None] < u[None, :]) & (v[:, None] > v[None, :])))
    return total


def _sweep(order: list, neighbours: Mapping, indices) -> list:
    """The order after one barycentre sweep over the columns ``indices``:
    each column sorted by the mean place of its neighbours in the column
    visited before (a node without any keeps its place)."""
    order = [list(c) for c in order]
    for i in indices:
        ref = order[i - 1] if indices.step == 1 else order[i + 1]
        where = {k: j / max(1, len(ref) - 1) for j, k in enumerate(ref)}
        n = max(1, len(order[i]) - 1)

        def centre(item, where=where, n=n):
            j, k = item
            found = [where[u] for u in neighbours[k] if u in where]
            return sum(found) / len(found) if found else j / n

        order[i] = [k for _, k in sorted(enumerate(order[i]), key=centre)]
    return order


def _pair_crossings(u, v, sides, where) -> int:
    """Crossings between the arrows of ``u`` and of ``v`` when ``u`` is above ``v``."""
    return sum(
        1
        for side in sides
        for a in side[u]
        for b in side[v]
        if where[a] > where[b]
    )


def _transpose(order: list, left: Mapping, right: Mapping, passes: int = 4) -> list:
    """The order after swapping neighbours in a column wherever that removes
    crossings (Sugiyama's transposition step), until no swap helps."""
    order = [list(c) for c in order]
    for _ in range(passes):
        where = {k: i for column in order for i, k in enumerate(column)}
        improved = False
        for column in order:
            for i in range(len(column) - 1):
                u, v = column[i], column[i + 1]
                if _pair_crossings(v, u, (left, right), where) < _pair_crossings(u, v, (left, right), where):
                    column[i], column[i + 1] = v, u
                    where[u], where[v] = i + 1, i
                    improved = True
        if not improved:
            break
    return order


def order_columns(col: Mapping, chains, keys) -> list:
    """Each column's keys, top to bottom, with few crossings."""
    count = max(col.values()) + 1
    rank = {k: i for i, k in enumerate(keys)}
    members = defaultdict(set)
    for chain in chains:
        for k in chain:
            members[col[k] if not isinstance(k, tuple) else k[2]].add(k)
    for k in keys:
        members[col[k]].add(k)
    order = [
        sorted(members[c], key=lambda k: rank[k] if not isinstance(k, tuple) else rank[k[1]] + 0.5)
        for c in range(count)
    ]
    left, right = _neighbours(chains)
    best, fewest = order, _crossings(order, left)
    for _ in range(ORDER_SWEEPS):
        order = _sweep(order, left, range(1, count, 1))
        order = _sweep(order, right, range(count - 2, -1, -1))
        order = _transpose(order, left, right)
        crossings = _crossings(order, left)
        if crossings < fewest:
            best, fewest = order, crossings
        if fewest == 0:
            break
    return best


def _isotonic(targets: np.ndarray) -> np.ndarray:
    """The non-decreasing sequence closest to ``targets`` in least squares
    (pool adjacent violators)."""
    blocks: list = []  # [mean, count]
    for t in targets:
        blocks.append([float(t), 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, n2 = blocks.pop()
            m1, n1 = blocks.pop()
            blocks.append([(m1 * n1 + m2 * n2) / (n1 + n2), n1 + n2])
    return np.concatenate([np.full(n, m) for m, n in blocks])


def _pack(column: list, heights: Mapping, wanted: Mapping, gap: float) -> dict:
    """Centres of the column's keys, in order, at least ``gap`` apart
    (edge to edge), as close as they can be to the ``wanted`` centres."""
    h = np.array([heights[k] for k in column])
    offset = np.concatenate([[0.0], np.cumsum((h[:-1] + h[1:]) / 2 + gap)])
    z = _isotonic(np.array([wanted[k] for k in column]) - offset)
    return dict(zip(column, z + offset))


def place(order: list, heights: Mapping, neighbours: tuple, gap: float) -> dict:
    """``{key: y}`` of every key: stacked columns, then sweeps that move each
    node towards the mean height of its neighbours."""
    y = {}
    for column in order:
        y.update(_pack(column, heights, {k: 0.0 for k in column}, gap))
        centre = np.mean([y[k] for k in column]) if column else 0.0
        y.update({k: y[k] - centre for k in column})
    left, right = neighbours
    for sweep in range(POSITION_SWEEPS):
        sides = (left,) if sweep % 2 == 0 else (right,)
        if sweep == POSITION_SWEEPS - 1:
            sides = (left, right)
        indices = range(len(order)) if sweep % 2 == 0 else range(len(order) - 1, -1, -1)
        for i in indices:
            wanted = {}
            for k in order[i]:
                # A trunk wants to run straight, at the height of the node it leaves.
                found = [y[k[1]]] if isinstance(k, tuple) else [y[u] for side in sides for u in side[k]]
                wanted[k] = float(np.mean(found)) if found else y[k]
            y.update(_pack(order[i], heights, wanted, gap))
    return y


def _ports(routes_start: list, target_centre, target_height: float, spacing: float) -> list:
    """Where the arrows reach a box's left side: spread over its height, in
    the order of where they come from, so that they do not cross there."""
    n = len(routes_start)
    step = min(spacing, target_height * 0.8 / max(1, n - 1)) if n > 1 else 0.0
    ranked = sorted(range(n), key=lambda i: routes_start[i])
    ys = {}
    for place_, i in enumerate(ranked):
        ys[i] = target_centre + (place_ - (n - 1) / 2) * step
    return [ys[i] for i in range(n)]


def layout(keys, arrows, sizes: Mapping, hgap: float, vgap: float, port_spacing: float = 6.0,
           margin: float = 10.0) -> Layout:
    """Lay out the boxes ``keys`` (in topological order) of ``sizes[key] =
    (width, height)`` and the ``arrows`` between them (objects with
    ``source`` and ``target`` keys): ``hgap`` between columns, ``vgap``
    between boxes of a column."""
    keys = list(keys)
    if not keys:
        return Layout({}, {}, (), {}, 2 * margin, 2 * margin)
    col = columns(keys, arrows)
    chains = _chains(arrows, col)
    order = order_columns(col, chains, keys)
    heights = {k: sizes[k][1] if not isinstance(k, tuple) else 0.0 for column in order for k in column}
    y = place(order, heights, _neighbours(chains), vgap)
    widths = [max((sizes[k][0] for k in column if not isinstance(k, tuple)), default=0.0) for column in order]
    lefts = np.concatenate([[0.0], np.cumsum(np.array(widths) + hgap)])
    x = {k: lefts[i] + widths[i] / 2 for i, column in enumerate(order) for k in column}
    top = min(y[k] - heights[k] / 2 for k in y)
    bottom = max(y[k] + heights[k] / 2 for k in y)
    shift = margin - top
    centres = {k: (float(x[k] + margin), float(y[k] + shift)) for k in keys}
    waypoints = {k: (float(x[k] + margin), float(y[k] + shift)) for k in y if isinstance(k, tuple)}
    routes = _routes(chains, centres, waypoints, sizes, port_spacing)
    return Layout(
        centres=centres,
        sizes={k: tuple(sizes[k]) for k in keys},
        routes=routes,
        column=col,
        width=float(lefts[-1] - hgap + 2 * margin),
        height=float(bottom - top + 2 * margin),
        pieces=tuple(trunk_pieces([a.source for a in arrows], routes)),
    )


def _routes(chains, centres, waypoints, sizes, spacing) -> tuple:
    """The points of each arrow: out of its source's right side, through its
    waypoints, into a port on its target's left side."""
    points = []
    for chain in chains:
        (sx, sy), (w, _) = centres[chain[0]], sizes[chain[0]]
        points.append([(sx + w / 2, sy), *(waypoints[k] for k in chain[1:-1])])
    by_target = defaultdict(list)
    for i, chain in enumerate(chains):
        by_target[chain[-1]].append(i)
    for target, indices in by_target.items():
        (tx, ty), (w, h) = centres[target], sizes[target]
        ports = _ports([points[i][-1][1] for i in indices], ty, h, spacing)
        for i, py in zip(indices, ports):
            points[i].append((tx - w / 2, py))
    return tuple(tuple(p) for p in points)


@attrs.frozen
class Piece:
    """A stretch of the trunk that the arrows leaving ``source`` share: its
    ``points``, from the waypoint where the previous arrow branched off (or
    the source's side) to waypoint number ``reach``, where ``arrows`` (the
    indices of the arrows that pass through it) still run together."""

    source: object
    reach: int
    points: tuple
    arrows: tuple


def reach(route) -> int:
    """How many waypoints a route passes before its last segment."""
    return len(route) - 2


def trunk_pieces(sources, routes) -> list:
    """The trunks of the arrows leaving one node, cut where an arrow branches
    off, as :class:`Piece` s: each stretch drawn once.

    The routes leaving one source pass the same waypoints, so each is a
    prefix of the longest plus its own last segment: arrow i is drawn as
    the pieces of its source with ``reach <= reach(routes[i])`` followed by
    ``routes[i][-2:]``. Drawing every route whole would draw the same
    trunk once per use: a picture quadratic in the uses of a tied param
    (T steps of an RNN, T routes of up to ~T points each); lighting up
    the pieces up to an arrow's reach shows exactly the way it goes.
    """
    by_source: dict = {}
    for i, (source, route) in enumerate(zip(sources, routes)):
        by_source.setdefault(source, []).append(i)
    pieces = []
    for source, arrows in by_source.items():
        longest = max((routes[i] for i in arrows), key=len)
        start = 0
        for r in sorted({reach(routes[i]) for i in arrows} - {0}):
            through = tuple(i for i in arrows if reach(routes[i]) >= r)
            pieces.append(Piece(source, r, tuple(longest[start : r + 1]), through))
            start = r
    return pieces


# ------------------------------------------------------------------ labels


def curve_point(p0, p1, t: float) -> tuple:
    """The point at ``t`` of the curve every renderer draws from ``p0`` to
    ``p1``: a cubic Bézier leaving and arriving horizontally, its control
    points halfway across."""
    (x0, y0), (x1, y1) = p0, p1
    xm = (x0 + x1) / 2
    b = ((1 - t) ** 3, 3 * t * (1 - t) ** 2, 3 * t * t * (1 - t), t**3)
    return (b[0] * x0 + (b[1] + b[2]) * xm + b[3] * x1, (b[0] + b[1]) * y0 + (b[2] + b[3]) * y1)


def label_points(routes, gap: float, t: float = 0.6) -> list:
    """Where each route's label goes: ``t`` of the way along its last
    segment (near its target, so that the uses of one node are told apart),
    moved apart vertically where labels of one column would come closer
    than ``gap``."""
    points = [curve_point(route[-2], route[-1], t) for route in routes]
    order = sorted(range(len(points)), key=lambda i: (round(points[i][0] / gap), points[i][1]))
    out = list(points)
    for prev, i in itertools.pairwise(order):
        (px, py), (x, y) = out[prev], out[i]
        if round(px / gap) == round(x / gap) and y - py < gap:
            out[i] = (x, py + gap)
    return out
