"""fgraph.viz: DOT text, drawings and the stepping page, with hostile names,
and the page in a real headless browser where one is installed."""

from __future__ import annotations

import html.parser
import itertools
import json
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import fgraph as fg
import fgraph.viz
import models
from fgraph import interpret
from fgraph.program import comment_text
from fgraph.viz import layout as lay
from fgraph.viz.scene import scene, shape_text

HOSTILE = [
    'say "hi"', "two\nlines", "back\\slash \\N \\l", "{braces}", "<b>bold</b>",
    "</script><script>document.title='pwned'</script>", '<img src=x onerror="alert(1)">', "it's & $x^2$",
    r"$\frac{1}$ (bad mathtext)",
]


def _ridge(batch=4):
    m = models.ridge_regression(3, 0.5)
    rng = np.random.default_rng(1)
    params = {"w": rng.normal(size=3), "b": np.float64(0.2)}
    data = {"x": rng.normal(size=(batch, 3)), "y": rng.normal(size=batch)}
    return m.graph, params, data


def _hostile_graph():
    """A graph whose every node has a hostile name; the param is used twice."""
    x = fg.input(HOSTILE[0], (2,))
    w = fg.param(HOSTILE[1], (2,))
    h = fg.tanh(fg.mul(x, w, name=HOSTILE[2]), name=HOSTILE[3])
    h = fg.scale(fg.sigmoid(h, name=HOSTILE[7]), 2.0, name=HOSTILE[8])
    J = fg.add(fg.sum(h, name=HOSTILE[4]), fg.l2_norm_penalty(w, 0.1, name=HOSTILE[5]), name=HOSTILE[6])
    g = fg.graph(objective=J)
    params = {HOSTILE[1]: np.array([0.3, -0.2])}
    data = {HOSTILE[0]: np.array([[1.0, 2.0], [0.5, -1.0]])}
    return g, params, data


def rnn(steps=8, d=3, h=4, k=3, batch=5):
    """An RNN unrolled over ``steps`` inputs x1, x2, …: W_hh, W_xh and b_h used at every step."""
    y = fg.input("y")
    W, U, b = fg.param("W_hh", (h, h)), fg.param("W_xh", (h, d)), fg.param("b_h", (h,))
    state = fg.param("h0", (h,))
    for t in range(1, steps + 1):
        x = fg.input(f"x{t}", (d,))
        pre = fg.add(fg.affine(W, state, b, name=f"W_hh h{t - 1}"), fg.matmul(U, x, name=f"W_xh x{t}"), name=f"pre{t}")
        state = fg.tanh(pre, name=f"h{t}")
    logits = fg.affine(fg.param("W_out", (k, h)), state, fg.param("b_out", (k,)), name="logits")
    g = fg.graph(prediction=logits, objective=fg.softmax_cross_entropy(logits, y, name="objective"))
    rng = np.random.default_rng(0)
    params = {n: rng.normal(scale=0.5, size=s) for n, s in g.params.items()}
    data = {f"x{t}": rng.normal(size=(batch, d)) for t in range(1, steps + 1)}
    return g, params, {**data, "y": rng.integers(0, k, size=batch)}


# ----------------------------------------------------------------- DOT

_TOKEN = re.compile(r'\s+|"(?:[^"\\]|\\.)*"|->|[{}\[\];,=]|[A-Za-z_][\w.]*|-?[\d.]+', re.DOTALL)


def _tokens(text: str) -> list:
    """DOT tokens; every character must belong to one (nothing a name could smuggle in)."""
    out, i = [], 0
    while i < len(text):
        m = _TOKEN.match(text, i)
        assert m, f"not DOT at {text[i:i + 40]!r}"
        if not m.group().isspace():
            out.append(m.group())
        i = m.end()
    return out


def _shown(quoted: str) -> list:
    """The lines Graphviz shows for a quoted label: \\" is a quote, \\\\ a
    backslash, \\n \\l \\r end lines; any other escape would be a Graphviz
    directive (\\N, \\G ...), which a label made from names must not hold."""
    body, lines, line, i = quoted[1:-1], [], "", 0
    while i < len(body):
        c = body[i]
        if c == "\\":
            nxt = body[i + 1]
            assert nxt in '"\\nlr', f"label escape \\{nxt} in {quoted!r}"
            if nxt in "nlr":
                lines.append(line)
                line = ""
            else:
                line += nxt
            i += 2
        else:
            line += c
            i += 1
    return lines + [line]


def _statements(dot: str) -> tuple[dict, list]:
    """``({node id: {attr: value}}, [(tail, head, {attr: value})])`` of the DOT text."""
    toks = _tokens(dot)
    assert toks[:3] == ["digraph", "fgraph", "{"] and toks[-1] == "}" and toks.count("{") == 1 and toks.count("}") == 1
    nodes, edges, i = {}, [], 3
    while i < len(toks) - 1:
        head = toks[i]
        if toks[i + 1] == "->":
            tail, target, i = head, toks[i + 2], i + 3
        else:
            tail, target, i = None, head, i + 1
        attrs = {}
        if toks[i] == "[":
            i += 1
            while toks[i] != "]":
                attrs[toks[i]] = toks[i + 2]
                i += 3 + (toks[i + 3] == ",")
            i += 1
        elif toks[i] == "=":  # a graph attribute: label="..."
            attrs[head] = toks[i + 1]
            i += 2
        assert toks[i] == ";", toks[i - 3:i + 2]
        i += 1
        if tail is not None:
            edges.append((tail, target, attrs))
        elif re.fullmatch(r"n\d+", target):
            nodes[target] = attrs
    return nodes, edges


def test_dot_draws_every_node_with_name_op_and_shape_and_one_edge_per_use():
    g, _, _ = _ridge()
    nodes, edges = _statements(fgraph.viz.to_dot(g))
    assert len(nodes) == len(g.nodes) and len(edges) == sum(len(n.inputs) for n in g.nodes)
    for slot, node in enumerate(g.nodes):
        attrs = nodes[f"n{slot}"]
        kind = node.op.name if node.op is not None else node.role
        assert _shown(attrs["label"]) == [node.name, kind + (" ×2 uses" if node.name == "w" else ""), shape_text(node)]
    assert {nodes["n0"]["shape"], nodes["n1"]["shape"], nodes["n5"]["shape"]} == {"ellipse", "box"}
    assert nodes["n1"]["fillcolor"] != nodes["n0"]["fillcolor"] != nodes["n5"]["fillcolor"]
    assert nodes["n1"]["peripheries"] == "2"  # w, the shared param
    assert sorted((t, h) for t, h, _ in edges if t == "n1") == [("n1", "n3"), ("n1", "n6")]


def test_dot_with_values_labels_norms_and_each_use_of_a_shared_param_with_its_contribution():
    g, params, data = _ridge()
    nodes, edges = _statements(fgraph.viz.to_dot(g, params, data))
    value, grads = fg.value_and_grad(g)(params, data)
    w_lines = _shown(nodes["n1"]["label"])
    assert w_lines[3:] == [f"‖v‖ {np.linalg.norm(params['w']):.4g}", f"‖∇‖ {np.linalg.norm(grads['w']):.4g}"]
    found = interpret.contributions(g, params, data)
    labels = {h: _shown(a["label"])[0] for t, h, a in edges if t == "n1"}
    assert labels == {
        "n6": f"use 1/2: ‖∇‖ {np.linalg.norm(found['w']['l2_penalty']):.4g}",
        "n3": f"use 2/2: ‖∇‖ {np.linalg.norm(found['w']['prediction']):.4g}",
    }
    assert _shown(next(a for t, h, a in edges if t == "n2")["label"]) == [f"‖∇‖ {abs(grads['b']):.4g}"]
    assert all("label" not in a for t, h, a in edges if t in ("n0", "n4"))  # data: no gradient taken
    assert _shown(_statements(fgraph.viz.to_dot(g, params, data))[0]["n7"]["label"])[3] == f"‖v‖ {value:.4g}"


def test_dot_escapes_every_name_so_none_changes_the_file_or_its_labels():
    g, params, data = _hostile_graph()
    for dot in (fgraph.viz.to_dot(g), fgraph.viz.to_dot(g, params, data)):
        nodes, edges = _statements(dot)
        assert len(nodes) == len(g.nodes) and len(edges) == sum(len(n.inputs) for n in g.nodes)
        for slot, node in enumerate(g.nodes):
            assert _shown(nodes[f"n{slot}"]["label"])[0] == comment_text(node.name)
    if shutil.which("dot"):
        svg = subprocess.run(["dot", "-Tsvg"], input=dot.encode(), capture_output=True, check=True).stdout
        ET.fromstring(svg)


def test_numbers_without_params_are_refused_by_name():
    g, params, data = _ridge()
    with pytest.raises(TypeError, match="data was given without params"):
        fgraph.viz.to_dot(g, None, data)
    with pytest.raises(TypeError, match="expected an fgraph Graph"):
        fgraph.viz.to_dot("g")
    with pytest.raises(fg.NameMismatchError, match="missing params"):
        fgraph.viz.to_dot(g, {"w": params["w"]}, data)


# ---------------------------------------------------------------- layout


def _plan(g, params=None, data=None):
    s = scene(g, params, data)
    sizes = {b.key: (40.0 + 5 * len(b.name), 50.0) for b in s.boxes}
    return s, lay.layout([b.key for b in s.boxes], s.arrows, sizes, hgap=60, vgap=10)


def test_columns_are_longest_paths_with_every_node_just_before_its_first_use():
    g, _, _ = rnn(steps=3)
    _s, plan = _plan(g)
    col = {g.nodes[k].name: c for k, c in plan.column.items()}
    assert col["h1"] < col["h2"] < col["h3"] < col["logits"] < col["objective"]
    assert col["pre2"] == col["h1"] + 2  # W_hh h1 between
    # W_xh x3 could be computed in column 1 but is used by pre3: it waits next to it, and so does x3.
    assert col["W_xh x3"] == col["pre3"] - 1 and col["x3"] == col["pre3"] - 2
    assert col["W_hh"] == col["W_hh h0"] - 1 and col["y"] == col["objective"] - 1


def test_a_node_used_many_times_is_drawn_once_with_one_trunk_that_branches_to_each_use():
    g, _, _ = rnn(steps=8)
    s, plan = _plan(g)
    w = g.slots["W_hh"]
    routes = [r for a, r in zip(s.arrows, plan.routes) if a.source == w]
    assert len(routes) == 8 and sum(1 for b in s.boxes if b.name == "W_hh") == 1
    # Every route leaves W_hh at one point, and the longest holds every shorter one's waypoints.
    assert len({r[0] for r in routes}) == 1
    longest = max(routes, key=len)
    assert all(set(r[1:-1]) <= set(longest[1:-1]) for r in routes)


def test_a_trunk_is_drawn_once_in_pieces_and_each_arrow_as_its_pieces_then_its_last_segment():
    g, _, _ = rnn(steps=8)
    s, plan = _plan(g)
    pieces = lay.trunk_pieces([a.source for a in s.arrows], plan.routes)
    assert plan.pieces == tuple(pieces)  # what the renderers draw
    assert any(p.source == g.slots["W_hh"] for p in pieces)
    assert len({(p.source, p.reach) for p in pieces}) == len(pieces)  # each stretch once
    for i, (a, route) in enumerate(zip(s.arrows, plan.routes)):
        mine = sorted((p for p in pieces if p.source == a.source and p.reach <= lay.reach(route)),
                      key=lambda p: p.reach)
        assert all(i in p.arrows for p in mine)
        assert not any(i in p.arrows for p in pieces if p not in mine)
        if not mine:
            assert len(route) == 2
            continue
        # pieces end to end, then the arrow's own last segment: the route whole
        joined = [mine[0].points[0]] + [q for p in mine for q in p.points[1:]]
        assert tuple(joined) == tuple(route[:-1])


def _near_and_far():
    """p used by a node in the next column (no waypoint) and by one 5 columns on, which
    only a second output reads: the objective's gradient reaches p through the near one alone."""
    x, p = fg.input("x", (2,)), fg.param("p", (2,))
    near = fg.mul(x, p, name="near")
    far = p
    for i in range(5):
        far = fg.tanh(fg.add(far, x), name=f"f{i}")
    far = fg.mul(far, p, name="far")
    g = fg.graph(objective=fg.sum(near, name="objective"), other=fg.sum(far, name="other"))
    return g, {"p": np.array([0.5, -0.3])}, {"x": np.array([[1.0, 2.0]])}


def test_a_trunk_piece_carries_gradient_only_where_an_arrow_through_it_does():
    g, params, data = _near_and_far()
    s, plan = _plan(g, params, data)
    p = g.slots["p"]
    pieces = [q for q in lay.trunk_pieces([a.source for a in s.arrows], plan.routes) if q.source == p]
    assert pieces and all(s.arrows[i].grad_norm is None for q in pieces for i in q.arrows)
    near = next(i for i, a in enumerate(s.arrows) if a.source == p and a.target == g.slots["near"])
    assert lay.reach(plan.routes[near]) == 0 and s.arrows[near].grad_norm is not None


def test_pictures_of_an_rnn_grow_linearly_with_its_steps(tmp_path):
    # Each of W_hh's T uses used to be drawn through the whole trunk, and each
    # step of the page listed every earlier contribution: both quadratic in T.
    size = {}
    for steps in (32, 64):
        g, params, data = rnn(steps=steps)
        size[steps] = fgraph.viz.page(g, tmp_path / f"rnn{steps}.html", params, data).stat().st_size
    assert size[64] < 2.2 * size[32]


def test_a_node_used_many_times_lists_its_newest_contributions_and_their_running_sum(tmp_path):
    steps = 3 * fgraph.viz.webpage.LISTED
    g, params, data = rnn(steps=steps)
    _, _, embedded = _page(tmp_path, g, params, data)
    w = g.slots["W_hh"]
    mine = [s for s in embedded["steps"] if s["receiver"] == w]
    assert len(mine) == steps
    for n, s in enumerate(mine, 1):
        listed = [ln for ln in s["detail"] if ln.startswith("  from ")]
        assert len(listed) == min(n, fgraph.viz.webpage.LISTED)
        assert f"contribution {n} of {steps}" in "\n".join(s["detail"])
        earlier = n - len(listed)
        assert any(f"({earlier} earlier contributions" in ln for ln in s["detail"]) == (earlier > 0)
    grad_w = fg.grad(g)(params, data)["W_hh"]
    assert f"sum, complete: ∂objective/∂W_hh: ‖Σ‖ {np.linalg.norm(grad_w):.4g}" in mine[-1]["detail"][-1]


def test_boxes_do_not_overlap_and_arrows_run_left_to_right_from_side_to_side():
    g, _, _ = rnn(steps=8)
    s, plan = _plan(g)
    boxes = [(plan.centres[k], plan.sizes[k]) for k in plan.centres]
    for i, ((x1, y1), (w1, h1)) in enumerate(boxes):
        assert 0 <= x1 - w1 / 2 and x1 + w1 / 2 <= plan.width and 0 <= y1 - h1 / 2 and y1 + h1 / 2 <= plan.height
        for (x2, y2), (w2, h2) in boxes[i + 1:]:
            assert abs(x1 - x2) >= (w1 + w2) / 2 or abs(y1 - y2) >= (h1 + h2) / 2
    for a, route in zip(s.arrows, plan.routes):
        (sx, sy), (sw, _) = plan.centres[a.source], plan.sizes[a.source]
        (tx, ty), (tw, th) = plan.centres[a.target], plan.sizes[a.target]
        assert route[0] == (sx + sw / 2, sy) and route[-1][0] == tx - tw / 2 and abs(route[-1][1] - ty) <= th / 2
        assert all(p[0] < q[0] for p, q in itertools.pairwise(route))


def test_crossings_are_swept_away_where_an_order_without_them_exists():
    # Nodes 0..5 in topological order; kept in that order, 0 -> 3 crosses 1 -> 2, and 2 -> 5 crosses 3 -> 4.
    arrows = [SimpleNamespace(source=s, target=t) for s, t in ((0, 3), (1, 2), (2, 5), (3, 4))]
    keys = list(range(6))
    col = lay.columns(keys, arrows)
    chains = lay._chains(arrows, col)
    left = lay._neighbours(chains)[0]
    naive = [sorted(k for k in keys if col[k] == c) for c in range(max(col.values()) + 1)]
    assert naive == [[0, 1], [2, 3], [4, 5]] and lay._crossings(naive, left) == 2
    assert lay._crossings(lay.order_columns(col, chains, keys), left) == 0


# ------------------------------------------------------------------ draw


@pytest.mark.parametrize("suffix", [".svg", ".png"])
def test_draw_writes_a_readable_file_of_its_suffixs_format(tmp_path, suffix):
    from PIL import Image

    g, params, data = rnn(steps=3)
    path = fgraph.viz.draw(g, tmp_path / f"rnn{suffix}", params, data)
    assert path == tmp_path / f"rnn{suffix}" and [p.name for p in tmp_path.iterdir()] == [path.name]
    if suffix == ".svg":
        assert ET.parse(path).getroot().tag.endswith("svg")
    else:
        with Image.open(path) as im:
            assert im.format == "PNG" and im.width > 1000 and np.asarray(im.convert("L")).std() > 10


def test_draw_shows_hostile_names_as_they_are_and_reads_no_mathtext(tmp_path):
    g, params, data = _hostile_graph()
    path = fgraph.viz.draw(g, tmp_path / "hostile.svg", params, data)
    ET.parse(path)  # still one well-formed XML document
    fgraph.viz.draw(g, tmp_path / "hostile.png")


def test_the_header_shows_the_value_of_an_output_whose_node_name_is_not_printable():
    x, w = fgraph.input("x", (2,)), fgraph.param("w", (2,))
    g = fgraph.graph(objective=fgraph.sum(fgraph.mul(x, w), name="loss\x07\n"))
    s = fgraph.viz.scene.scene(g, {"w": np.array([1.0, 2.0])}, {"x": np.array([3.0, 4.0])})
    assert fgraph.viz.render.header_text(s).startswith("objective = 11; 4 nodes")


def test_draw_refuses_an_unknown_format_or_engine_by_name(tmp_path):
    g, _, _ = _ridge()
    with pytest.raises(ValueError, match=r"'\.jpg'"):
        fgraph.viz.draw(g, tmp_path / "g.jpg")
    with pytest.raises(ValueError, match="engine must be one of"):
        fgraph.viz.draw(g, tmp_path / "g.svg", engine="dot")
    with pytest.raises(FileNotFoundError, match="no such directory"):
        fgraph.viz.draw(g, tmp_path / "missing" / "g.svg")
    assert list(tmp_path.iterdir()) == []


def test_the_graphviz_engine_renders_to_dot_with_the_dot_program(tmp_path, monkeypatch):
    g, params, data = _ridge()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(FileNotFoundError, match="Graphviz's `dot` program"):
        fgraph.viz.draw(g, tmp_path / "g.svg", engine="graphviz")
    # A stand-in dot that records its format and echoes what it is given.
    fake = bin_dir / "dot"
    fake.write_text(f"#!{sys.executable}\nimport sys\nsys.stdout.write(sys.argv[1] + '\\n' + sys.stdin.read())\n")
    fake.chmod(0o755)
    path = fgraph.viz.draw(g, tmp_path / "g.svg", params, data, engine="graphviz")
    assert path.read_text(encoding="utf-8") == "-Tsvg\n" + fgraph.viz.to_dot(g, params, data)


def test_importing_fgraph_viz_imports_no_matplotlib_and_drawing_does():
    code = (
        "import sys, fgraph; assert fgraph.viz.draw and 'matplotlib' not in sys.modules, 'at import';"
        "import numpy as np, tempfile, os; g = fgraph.graph(objective=fgraph.sum(fgraph.param('w', (2,))));"
        "fgraph.viz.to_dot(g, {'w': np.ones(2)}); d = tempfile.mkdtemp();"
        "fgraph.viz.page(g, os.path.join(d, 'p.html'), {'w': np.ones(2)});"
        " assert 'matplotlib' not in sys.modules, 'page';"
        "fgraph.viz.draw(g, os.path.join(d, 'g.svg')); assert 'matplotlib' in sys.modules"
    )
    result = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# ------------------------------------------------------------------ page


class _Page(html.parser.HTMLParser):
    """The parts of the page the tests look at: elements by id (with their
    classes and text), every tag met, and the scripts' contents."""

    def __init__(self):
        super().__init__()
        self.ids, self.tags, self.scripts, self._open = {}, [], [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        entry = {"tag": tag, "class": (a.get("class") or "").split(), "text": "", "attrs": a}
        if "id" in a:
            self.ids[a["id"]] = entry
        self._open.append(entry)
        if tag == "script":
            self.scripts.append(entry)

    def handle_endtag(self, tag):
        if self._open:
            self._open.pop()

    def handle_data(self, data):
        for entry in self._open:
            entry["text"] += data


def _parse(text: str) -> _Page:
    p = _Page()
    p.feed(text)
    p.close()
    return p


def _page(tmp_path, g, params, data, name="page.html") -> tuple[Path, _Page, dict]:
    path = fgraph.viz.page(g, tmp_path / name, params, data)
    parsed = _parse(path.read_text(encoding="utf-8"))
    return path, parsed, json.loads(parsed.ids["fgraph-data"]["text"])


def test_the_page_holds_every_node_every_program_line_and_one_step_per_gradient_edge(tmp_path):
    g, params, data = _ridge()
    path, page, embedded = _page(tmp_path, g, params, data)
    lines = fg.program_source(g).splitlines()
    assert [page.ids[f"line-{i}"]["text"] for i in range(len(lines))] == lines
    for slot, node in enumerate(g.nodes):
        assert page.ids[f"b{slot}"]["text"].startswith(node.name)
    t = interpret.trace(g, params, data)
    steps = embedded["steps"]
    assert len(steps) == len(t.edges) + 1 and lines[steps[0]["line"]].split("#")[0].strip() == "g7 = cotangent"
    for step, e in zip(steps[1:], t.edges):
        assert f"# {e.source!r} <- {g.node(e.consumer).op.name} {e.consumer!r}" in lines[step["line"]]
        assert (step["receiver"], step["consumer"]) == (g.slots[e.source], g.slots[e.consumer])
    assert [s["line"] for s in steps] == sorted(s["line"] for s in steps)
    # w's last contribution completes its gradient, shown as the running sum's end.
    last_w = max(i for i, s in enumerate(steps) if s["receiver"] == g.slots["w"])
    grad_w = fg.grad(g)(params, data)["w"]
    assert f"sum, complete: ∂objective/∂w: ‖Σ‖ {np.linalg.norm(grad_w):.4g}" in "\n".join(steps[last_w]["detail"])
    # nothing from the network
    assert not re.search(r"(src|href)\s*=\s*['\"]?(https?:)?//", path.read_text(encoding="utf-8"))


def test_hostile_names_stay_text_in_the_page(tmp_path):
    g, params, data = _hostile_graph()
    path, page, embedded = _page(tmp_path, g, params, data)
    text = path.read_text(encoding="utf-8")
    assert [t for t, _ in page.tags].count("script") == 3 and "img" not in [t for t, _ in page.tags]
    assert not any(k.startswith("on") for _, a in page.tags for k in a)
    assert "</script><script>document" not in text and "<img" not in text and "<b>" not in text
    assert "<" not in page.ids["fgraph-data"]["text"]
    for slot, node in enumerate(g.nodes):
        assert page.ids[f"b{slot}"]["text"].startswith(comment_text(node.name))
    shown = json.dumps(embedded, ensure_ascii=False)
    assert all(json.dumps(comment_text(name), ensure_ascii=False)[1:-1] in shown for name in HOSTILE[5:7])


def test_a_lone_surrogate_in_the_output_name_or_the_title_is_shown_as_its_escape(tmp_path):
    """UTF-8 cannot encode a lone surrogate, which a Python str (a name, a title) can hold."""
    x, w = fg.input("x", (2,)), fg.param("w", (2,))
    g = fg.graph(**{"\ud800": fg.sum(fg.mul(x, w))})
    path = fgraph.viz.page(g, tmp_path / "p.html", {"w": np.ones(2)}, {"x": np.ones(2)}, output="\ud800",
                           title="t\udc00")
    text = path.read_text(encoding="utf-8")
    assert "\\ud800" in text and "t\\udc00" in text


@pytest.mark.parametrize("value, want", [
    ([1e200, 1e200, 1.0], 2**0.5 * 1e200),  # squares overflow
    ([1e-200, 1e-200, 0.0], 2**0.5 * 1e-200),  # squares underflow
    ([0.0, 0.0], 0.0), ([np.inf, 1.0], np.inf), ([np.nan, np.inf], np.nan),
])
def test_norms_shown_neither_overflow_nor_underflow(value, want):
    from fgraph.viz.scene import norm

    got = norm(np.array(value))
    assert (np.isnan(got) and np.isnan(want)) or got == pytest.approx(want, rel=1e-15)


def test_a_page_needs_params():
    g, _, data = _ridge()
    with pytest.raises(TypeError, match="needs params"):
        fgraph.viz.page(g, "unused.html", None, data)


# -------------------------------------------------------- in a browser

BROWSER = next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
needs_browser = pytest.mark.skipif(BROWSER is None, reason="no headless browser (chromium) installed")


def _browse(url: str, *extra: str) -> str:
    """What a headless browser makes of ``url``: its DOM after the scripts ran (stdout)."""
    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run([BROWSER, *FLAGS, f"--user-data-dir={profile}", *extra, url],
                                check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def _dom(url: str) -> _Page:
    return _dom_of(_browse(url, "--dump-dom"))


def _dom_of(dumped: str) -> _Page:
    """The dumped DOM, parsed, after checking that the page's script ran without an error."""
    dom = _parse(dumped)
    root = dict(dom.tags[0][1])
    assert dom.tags[0][0] == "html" and "data-js-error" not in root, root.get("data-js-error")
    assert root.get("data-ready") == "true"
    return dom


def _marked(dom: _Page, cls: str) -> list:
    return sorted(k for k, e in dom.ids.items() if cls in e["class"])


@needs_browser
def test_the_browser_shows_each_step_highlighting_its_line_its_nodes_and_its_edge(tmp_path):
    g, params, data = _ridge()
    path, _, embedded = _page(tmp_path, g, params, data)
    steps = embedded["steps"]
    urls = [f"{path.as_uri()}#step={k}" for k in range(len(steps))] + [f"{path.as_uri()}?step=3"]
    with ThreadPoolExecutor(2) as pool:
        doms = list(pool.map(_dom, urls))
    # An arrow past waypoints is drawn as the pieces of its source's trunk up to its reach, then its
    # last segment: those pieces light up with it, and no others.
    assert any(k.startswith("t") for k in doms[0].ids)
    for k, dom in enumerate(doms[:-1]):
        step = steps[k]
        body = next(a for t, a in dom.tags if t == "body")
        assert body["data-step"] == str(k) and dom.ids["where"]["text"] == f"step {k} of {len(steps) - 1}"
        arrow = [f"a{step['arrow']}", *_pieces_of(dom, [step["arrow"]])] if k else []
        assert _marked(dom, "current") == sorted([f"line-{step['line']}", *arrow])
        assert _marked(dom, "receiver") == [f"b{step['receiver']}"]
        assert _marked(dom, "consumer") == ([f"b{step['consumer']}"] if k else [])
        assert dom.ids["title"]["text"] == step["title"]
        assert len([i for i in _marked(dom, "done") if i.startswith("a")]) == k  # the edges sent so far
        sent = _pieces_of(dom, [s["arrow"] for s in steps[1 : k + 1]])
        assert [i for i in _marked(dom, "done") if i.startswith("t")] == sent
    assert next(a for t, a in doms[-1].tags if t == "body")["data-step"] == "3"


def _pieces_of(dom, arrows) -> list:
    """The ids of the trunk pieces the arrows pass through (source and reach from the page's attributes)."""
    ways = [dom.ids[f"a{i}"]["attrs"] for i in arrows]
    return sorted(
        key for key, e in dom.ids.items()
        if "trunk" in e["class"] and any(
            w.get("data-source") == e["attrs"]["data-source"] and int(e["attrs"]["data-reach"]) <= int(w["data-reach"])
            for w in ways if "data-reach" in w
        )
    )


@needs_browser
def test_a_use_in_the_next_column_lights_no_trunk(tmp_path):
    g, params, data = _near_and_far()
    path, _, embedded = _page(tmp_path, g, params, data)
    page = _parse(path.read_text(encoding="utf-8"))
    p = g.slots["p"]
    k = next(i for i, s in enumerate(embedded["steps"]) if s["receiver"] == p)
    assert "data-reach" not in page.ids[f"a{embedded['steps'][k]['arrow']}"]["attrs"]
    assert any(e["attrs"].get("data-source") == str(p) for e in page.ids.values() if "trunk" in e["class"])
    dom = _dom(f"{path.as_uri()}#step={k}")
    assert not [i for i in _marked(dom, "current") + _marked(dom, "done") if i.startswith("t")]


@needs_browser
def test_the_browser_moves_with_the_buttons_and_the_arrow_keys_and_renders(tmp_path):
    g, params, data = _ridge()
    path, _, embedded = _page(tmp_path, g, params, data)
    last = len(embedded["steps"]) - 1
    driver = """<script>
    const seen = [];
    const key = k => {
        document.dispatchEvent(new KeyboardEvent("keydown", {key: k})); seen.push(document.body.dataset.step);
    };
    const click = id => { document.getElementById(id).click(); seen.push(document.body.dataset.step); };
    key("ArrowRight"); key("ArrowRight"); key("ArrowLeft"); key("End");
    key("ArrowRight"); key("Home"); key("ArrowLeft");
    click("next"); click("last"); click("prev"); click("first");
    document.body.dataset.seen = seen.join(",");
    </script></body>"""
    driven = tmp_path / "driven.html"
    driven.write_text(path.read_text(encoding="utf-8").replace("</body>", driver), encoding="utf-8")
    dom = _dom(driven.as_uri())
    seen = next(a for t, a in dom.tags if t == "body")["data-seen"]
    assert seen == f"1,2,1,{last},{last},0,0,1,{last},{last - 1},0"
    shot = tmp_path / "shot.png"
    _browse(f"{path.as_uri()}#step=5", f"--screenshot={shot}", "--window-size=1200,700")
    from PIL import Image

    with Image.open(shot) as im:
        pixels = np.asarray(im.convert("RGB")).reshape(-1, 3)
    # The highlighted line (#fde68a) and the current arrow (#f59e0b) are on screen.
    assert (np.abs(pixels.astype(int) - [0xFD, 0xE6, 0x8A]).sum(1) < 10).sum() > 1000
    assert (np.abs(pixels.astype(int) - [0xF5, 0x9E, 0x0B]).sum(1) < 30).sum() > 50


@needs_browser
def test_hostile_names_run_no_script_in_the_browser(tmp_path):
    g, params, data = _hostile_graph()
    path, _, embedded = _page(tmp_path, g, params, data)
    dumped = _browse(f"{path.as_uri()}#step={len(embedded['steps']) - 1}", "--dump-dom")
    dom = _dom_of(dumped)
    assert "img" not in [t for t, _ in dom.tags] and [t for t, _ in dom.tags].count("script") == 3
    assert dom.ids["title"]["text"] == embedded["steps"][-1]["title"]
    # The name that would set the document's title, had it run, is text in a box.
    assert re.search(r"<title>(.*?)</title>", dumped)[1] == f"Backpropagation through {len(g.nodes)} nodes"
