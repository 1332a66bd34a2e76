"""Pictures of graphs, to see backpropagation work.

::

    fgraph.viz.to_dot(g, params, data)          # Graphviz DOT text
    fgraph.viz.draw(g, "graph.svg", params, data)   # .svg, .png or .pdf, drawn with matplotlib
    fgraph.viz.page(g, "backprop.html", params, data)  # step through the backward pass in a browser

Without params, a picture shows the graph: each node's name, primitive and
per-example shape, inputs, params and ops in their own colours. With params
(and data), it shows one evaluation of the output (``output="objective"``):
each node's value and gradient norms and, on each use of a node, the norm
of the gradient that use sends back, from :mod:`fgraph.interpret`. A param
used several times is drawn once, with one arrow per use.

matplotlib is imported by :func:`draw` when it runs, never by ``import
fgraph``; no system program is needed (``draw(..., engine="graphviz")``
uses Graphviz's ``dot`` where it is installed).
"""

from fgraph.viz.dot import to_dot
from fgraph.viz.render import draw
from fgraph.viz.scene import Scene
from fgraph.viz.webpage import page

__all__ = ["Scene", "draw", "page", "to_dot"]
