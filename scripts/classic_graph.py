"""The assignment's computation-graph design, written from scratch as a baseline.

This is the "classic" design that fgraph is measured against in
``scripts/bench.py``: every node is a mutable object with an ``out`` and a
``d_out`` attribute, a ``forward()`` that reads its inputs' ``out`` and sets
its own, and a ``backward()`` that adds its contribution into its inputs'
``d_out``. A :class:`ComputationGraphFunction` sets the values of the leaf
nodes, runs ``forward`` over the nodes in topological order, zeros every
``d_out``, runs ``backward`` in reverse order and collects the parameters'
``d_out`` as gradients. Training is the assignment's loop: plain SGD, one
example at a time (or one minibatch), ``param -= step_size * grad``.

As in the assignment, every node gets a gradient, data inputs included: the
design has no notion of "this node does not need one". That is part of what
is being measured, so it is kept.

Batches: a node may also see data with one leading batch axis. Element-wise
and affine nodes map over it; loss nodes (:class:`SquaredL2DistanceNode`,
:class:`NLLNode`, :class:`SoftmaxCrossEntropyNode`) average their
per-example values over it, so a minibatch objective is the mean of the
per-example objectives (the same convention as fgraph).

The module depends on NumPy only. The assignment's models
(:class:`RidgeRegression`, :class:`LinearRegression`, :class:`MLPRegression`,
:class:`MulticlassClassifier`) and its experiments (:func:`homework`) are at
the end, so that the whole homework can be timed in this design.
"""

from __future__ import annotations

import time

import numpy as np

# --------------------------------------------------------------------- nodes


class ValueNode:
    """A leaf whose ``out`` is set from outside: an input, an outcome or a parameter."""

    def __init__(self, node_name):
        self.node_name = node_name
        self.out = None
        self.d_out = None

    def forward(self):
        return self.out

    def backward(self):
        pass

    def get_predecessors(self):
        return []


class VectorScalarAffineNode:
    """x·w + b for x (d,) [or (B, d)], w (d,), b () -> () [or (B,)]."""

    def __init__(self, x, w, b, node_name):
        self.node_name = node_name
        self.x, self.w, self.b = x, w, b
        self.out = None
        self.d_out = None

    def forward(self):
        self.out = self.x.out.dot(self.w.out) + self.b.out
        return self.out

    def backward(self):
        d, x, w = self.d_out, self.x.out, self.w.out
        if x.ndim == 1:
            self.x.d_out += d * w
            self.w.d_out += d * x
            self.b.d_out += d
        else:
            self.x.d_out += np.multiply.outer(d, w)
            self.w.d_out += d.dot(x)
            self.b.d_out += d.sum()

    def get_predecessors(self):
        return [self.x, self.w, self.b]


class AffineNode:
    """W x + b for W (m, d), x (d,) [or (B, d)], b (m,) -> (m,) [or (B, m)]."""

    def __init__(self, W, x, b, node_name):
        self.node_name = node_name
        self.W, self.x, self.b = W, x, b
        self.out = None
        self.d_out = None

    def forward(self):
        x, W = self.x.out, self.W.out
        self.out = (W.dot(x) if x.ndim == 1 else x.dot(W.T)) + self.b.out
        return self.out

    def backward(self):
        d, x, W = self.d_out, self.x.out, self.W.out
        self.x.d_out += d.dot(W)
        if x.ndim == 1:
            self.W.d_out += np.multiply.outer(d, x)
            self.b.d_out += d
        else:
            self.W.d_out += d.T.dot(x)
            self.b.d_out += d.sum(axis=0)

    def get_predecessors(self):
        return [self.W, self.x, self.b]


class TanhNode:
    """Element-wise tanh; the backward pass uses the stored output: tanh' = 1 - tanh²."""

    def __init__(self, a, node_name):
        self.node_name = node_name
        self.a = a
        self.out = None
        self.d_out = None

    def forward(self):
        self.out = np.tanh(self.a.out)
        return self.out

    def backward(self):
        self.a.d_out += self.d_out * (1 - self.out * self.out)

    def get_predecessors(self):
        return [self.a]


class SumNode:
    """a + b."""

    def __init__(self, a, b, node_name):
        self.node_name = node_name
        self.a, self.b = a, b
        self.out = None
        self.d_out = None

    def forward(self):
        self.out = self.a.out + self.b.out
        return self.out

    def backward(self):
        self.a.d_out += self.d_out
        self.b.d_out += self.d_out

    def get_predecessors(self):
        return [self.a, self.b]


def _examples(value, example_ndim):
    """How many examples ``value`` holds when one example has ``example_ndim`` axes."""
    shape = np.shape(value)
    n = 1
    for size in shape[: len(shape) - example_ndim]:
        n *= size
    return n


class SquaredL2DistanceNode:
    """‖a - b‖² per example, averaged over the batch.

    ``example_ndim`` is the number of axes of one example's ``a`` (0 for a
    scalar prediction); any axes before them are the batch.
    """

    def __init__(self, a, b, node_name, example_ndim=0):
        self.node_name = node_name
        self.a, self.b = a, b
        self.example_ndim = example_ndim
        self.out = None
        self.d_out = None
        self.a_minus_b = None

    def forward(self):
        self.a_minus_b = self.a.out - self.b.out
        self.out = np.sum(self.a_minus_b**2) / _examples(self.a_minus_b, self.example_ndim)
        return self.out

    def backward(self):
        d = (2 * self.d_out / _examples(self.a_minus_b, self.example_ndim)) * self.a_minus_b
        self.a.d_out += d
        self.b.d_out -= d

    def get_predecessors(self):
        return [self.a, self.b]


class L2NormPenaltyNode:
    """l2_reg · ‖w‖² for a parameter w."""

    def __init__(self, l2_reg, w, node_name):
        self.node_name = node_name
        self.l2_reg = np.array(l2_reg)
        self.w = w
        self.out = None
        self.d_out = None

    def forward(self):
        self.out = self.l2_reg * self.w.out.dot(self.w.out)
        return self.out

    def backward(self):
        self.w.d_out += (2 * self.l2_reg * self.d_out) * self.w.out

    def get_predecessors(self):
        return [self.w]


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


class SoftmaxNode:
    """softmax over the last axis, shifted by the max so it cannot overflow."""

    def __init__(self, z, node_name):
        self.node_name = node_name
        self.z = z
        self.out = None
        self.d_out = None

    def forward(self):
        self.out = _softmax(self.z.out)
        return self.out

    def backward(self):
        s, d = self.out, self.d_out
        self.z.d_out += s * (d - (d * s).sum(axis=-1, keepdims=True))

    def get_predecessors(self):
        return [self.z]


def _rows(p, y):
    """Index of each example's true class in ``p``: ``y`` or ``(arange(B), y)``."""
    return y if p.ndim == 1 else (np.arange(p.shape[0]), y)


class NLLNode:
    """-log y_hat[y] per example (y an integer label), averaged over the batch."""

    def __init__(self, y_hat, y_true, node_name):
        self.node_name = node_name
        self.y_hat, self.y_true = y_hat, y_true
        self.out = None
        self.d_out = None

    def forward(self):
        p = self.y_hat.out
        self.out = -np.mean(np.log(p[_rows(p, self.y_true.out)]))
        return self.out

    def backward(self):
        p, y = self.y_hat.out, self.y_true.out
        rows = _rows(p, y)
        self.y_hat.d_out[rows] -= (self.d_out / _examples(p, 1)) / p[rows]

    def get_predecessors(self):
        return [self.y_hat, self.y_true]


class SoftmaxCrossEntropyNode:
    """-log softmax(z)[y] per example, fused and stable, averaged over the batch."""

    def __init__(self, z, y_true, node_name):
        self.node_name = node_name
        self.z, self.y_true = z, y_true
        self.out = None
        self.d_out = None
        self.probabilities = None

    def forward(self):
        z, y = self.z.out, self.y_true.out
        shifted = z - z.max(axis=-1, keepdims=True)
        e = np.exp(shifted)
        total = e.sum(axis=-1, keepdims=True)
        self.probabilities = e / total
        self.out = np.mean(np.log(total[..., 0]) - shifted[_rows(z, y)])
        return self.out

    def backward(self):
        z, y = self.z.out, self.y_true.out
        d = self.probabilities.copy()
        d[_rows(z, y)] -= 1.0
        self.z.d_out += d * (self.d_out / _examples(z, 1))

    def get_predecessors(self):
        return [self.z, self.y_true]


# --------------------------------------------------------------------- graph


def sort_topological(sink):
    """Every node ``sink`` depends on, each after its predecessors (depth first)."""
    order, seen = [], set()

    def visit(node):
        if id(node) in seen:
            return
        seen.add(id(node))
        for parent in node.get_predecessors():
            visit(parent)
        order.append(node)

    visit(sink)
    return order


class ComputationGraphFunction:
    """A graph with named inputs, outcomes and parameters, a prediction and an objective.

    The node lists (topological order) are computed once; each call sets the
    leaves' ``out``, then walks them.
    """

    def __init__(self, inputs, outcomes, parameters, prediction, objective):
        self.inputs = inputs
        self.outcomes = outcomes
        self.parameters = parameters
        self.prediction = prediction
        self.objective = objective
        self.name_to_node = {}
        for node in sort_topological(objective) + sort_topological(prediction):
            self.name_to_node[node.node_name] = node
        self.objective_node_list_forward = sort_topological(objective)
        self.objective_node_list_backward = self.objective_node_list_forward[::-1]
        self.prediction_node_list_forward = sort_topological(prediction)

    def set_values(self, node_values):
        """Set the ``out`` of the named leaf nodes."""
        for name, value in node_values.items():
            self.name_to_node[name].out = value

    def set_parameters(self, parameter_values):
        """Set the parameters to copies of ``parameter_values`` (they are updated in place)."""
        self.set_values({k: np.array(v, dtype=float) for k, v in parameter_values.items()})

    def get_parameters(self):
        """Copies of the current parameter values."""
        return {node.node_name: np.array(node.out) for node in self.parameters}

    def sgd_update(self, grads, step_size):
        """One SGD step, in place: ``param -= step_size * grad``."""
        for name, g in grads.items():
            self.name_to_node[name].out -= step_size * g

    def get_objective(self, input_values, outcome_values):
        """Forward pass of the objective."""
        self.set_values(input_values)
        self.set_values(outcome_values)
        out = None
        for node in self.objective_node_list_forward:
            out = node.forward()
        return out

    def get_gradients(self, input_values, outcome_values):
        """``(objective, {param name: gradient})``: forward, zero every d_out, backward."""
        obj = self.get_objective(input_values, outcome_values)
        for node in self.objective_node_list_forward:
            node.d_out = np.zeros(np.shape(node.out))
        self.objective.d_out = np.array(1.0)
        for node in self.objective_node_list_backward:
            node.backward()
        return obj, {node.node_name: node.d_out for node in self.parameters}

    def get_prediction(self, input_values):
        """Forward pass of the prediction."""
        self.set_values(input_values)
        out = None
        for node in self.prediction_node_list_forward:
            out = node.forward()
        return out


def default_permutation(seed):
    """``order(n, epoch)``: a seeded permutation per epoch (no global random state)."""
    return lambda n, epoch: np.random.default_rng([seed, epoch]).permutation(n)


def train_sgd(graph, X, y, step_size, epochs, batch_size=1, order=None, input_name="x",
              outcome_name="y", callback=None):
    """The assignment's training loop: SGD over ``epochs``, updating the graph's params in place.

    ``order(n, epoch)`` gives the visiting order of an epoch (``None`` from
    it means "as stored", for a full batch). With ``batch_size == 1`` the
    graph sees one example at a time, without a batch axis, exactly as in
    the assignment; otherwise it sees minibatches with a leading batch axis.
    ``callback(epoch)`` runs after every epoch. Returns the per-epoch mean
    objective.
    """
    order = default_permutation(0) if order is None else order
    n = len(y)
    history = []
    for epoch in range(epochs):
        perm = order(n, epoch)
        total = 0.0
        if batch_size == 1:
            for j in (range(n) if perm is None else perm):
                obj, grads = graph.get_gradients({input_name: X[j]}, {outcome_name: y[j]})
                total += obj
                graph.sgd_update(grads, step_size)
            history.append(total / n)
        else:
            Xp, yp = (X, y) if perm is None else (X[perm], y[perm])
            steps = 0
            for i in range(0, n, batch_size):
                obj, grads = graph.get_gradients({input_name: Xp[i : i + batch_size]},
                                                 {outcome_name: yp[i : i + batch_size]})
                total += obj
                steps += 1
                graph.sgd_update(grads, step_size)
            history.append(total / steps)
        if callback is not None:
            callback(epoch)
    return history


# -------------------------------------------------------------------- models


def ridge_graph(l2_reg):
    """The assignment's ridge regression: (x·w + b - y)² + l2_reg ‖w‖²."""
    x, y = ValueNode("x"), ValueNode("y")
    w, b = ValueNode("w"), ValueNode("b")
    prediction = VectorScalarAffineNode(x=x, w=w, b=b, node_name="prediction")
    square_loss = SquaredL2DistanceNode(a=prediction, b=y, node_name="square loss")
    penalty = L2NormPenaltyNode(l2_reg=l2_reg, w=w, node_name="l2 norm")
    objective = SumNode(a=square_loss, b=penalty, node_name="objective")
    return ComputationGraphFunction([x], [y], [w, b], prediction, objective)


def linear_graph():
    """The assignment's linear regression: (x·w + b - y)²."""
    x, y = ValueNode("x"), ValueNode("y")
    w, b = ValueNode("w"), ValueNode("b")
    prediction = VectorScalarAffineNode(x=x, w=w, b=b, node_name="prediction")
    objective = SquaredL2DistanceNode(a=prediction, b=y, node_name="square loss")
    return ComputationGraphFunction([x], [y], [w, b], prediction, objective)


def mlp_regression_graph():
    """The assignment's MLP: tanh(W1 x + b1)·w2 + b2, square loss."""
    x, y = ValueNode("x"), ValueNode("y")
    W1, b1, w2, b2 = (ValueNode(n) for n in ("W1", "b1", "w2", "b2"))
    L = AffineNode(W=W1, x=x, b=b1, node_name="L")
    h = TanhNode(a=L, node_name="h")
    prediction = VectorScalarAffineNode(x=h, w=w2, b=b2, node_name="prediction")
    objective = SquaredL2DistanceNode(a=prediction, b=y, node_name="square loss")
    return ComputationGraphFunction([x], [y], [W1, b1, w2, b2], prediction, objective)


def mlp_classifier_graph(fused=False):
    """The assignment's classifier: softmax(W2 tanh(W1 x + b1) + b2), negative log-likelihood.

    With ``fused=True`` the prediction is the logits and the objective a
    fused, stable softmax cross-entropy (the same function, computed in one
    node).
    """
    x, y = ValueNode("x"), ValueNode("y")
    W1, b1, W2, b2 = (ValueNode(n) for n in ("W1", "b1", "W2", "b2"))
    L = AffineNode(W=W1, x=x, b=b1, node_name="L")
    h = TanhNode(a=L, node_name="h")
    z = AffineNode(W=W2, x=h, b=b2, node_name="z")
    if fused:
        objective = SoftmaxCrossEntropyNode(z=z, y_true=y, node_name="cross entropy")
        return ComputationGraphFunction([x], [y], [W1, b1, W2, b2], z, objective)
    prediction = SoftmaxNode(z=z, node_name="prediction")
    objective = NLLNode(y_hat=prediction, y_true=y, node_name="nll")
    return ComputationGraphFunction([x], [y], [W1, b1, W2, b2], prediction, objective)


class _SGDEstimator:
    """fit/predict around a graph, as the assignment's estimators do.

    Every ``eval_every`` epochs the training loss is evaluated (one example
    at a time through the prediction), as the assignment's loops do to print
    progress; ``self.train_losses`` keeps it.
    """

    eval_every = 50

    def __init__(self, step_size, max_num_epochs, seed=0):
        self.step_size = step_size
        self.max_num_epochs = max_num_epochs
        self.seed = seed
        self.graph = self.build()

    def build(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def initial_values(self, num_ftrs, rng):  # pragma: no cover - abstract
        raise NotImplementedError

    def loss(self, X, y):
        """Mean per-example loss of the current params on (X, y)."""
        return float(np.mean((self.predict(X) - y) ** 2))

    def fit(self, X, y):
        rng = np.random.default_rng(self.seed)
        self.graph.set_parameters(self.initial_values(X.shape[1], rng))
        self.train_losses = []

        def progress(epoch):
            if epoch % self.eval_every == 0:
                self.train_losses.append((epoch, self.loss(X, y)))

        self.history = train_sgd(self.graph, X, y, self.step_size, self.max_num_epochs,
                                 order=default_permutation(self.seed), callback=progress)
        return self

    def predict(self, X):
        return np.array([self.graph.get_prediction({"x": x}) for x in X])


class RidgeRegression(_SGDEstimator):
    """Ridge regression trained by SGD; initial params zero (as in the assignment)."""

    def __init__(self, l2_reg=1.0, step_size=0.005, max_num_epochs=5000, seed=0):
        self.l2_reg = l2_reg
        super().__init__(step_size, max_num_epochs, seed)

    def build(self):
        return ridge_graph(self.l2_reg)

    def initial_values(self, num_ftrs, rng):
        return {"w": np.zeros(num_ftrs), "b": np.array(0.0)}


class LinearRegression(RidgeRegression):
    """Least squares trained by SGD (no penalty)."""

    def __init__(self, step_size=0.001, max_num_epochs=1000, seed=0):
        super().__init__(0.0, step_size, max_num_epochs, seed)

    def build(self):
        return linear_graph()


class MLPRegression(_SGDEstimator):
    """One tanh hidden layer; every param drawn as ``init_param_scale · N(0, 1)``."""

    def __init__(self, num_hidden_units=10, step_size=0.005, init_param_scale=0.01,
                 max_num_epochs=5000, seed=0):
        self.num_hidden_units = num_hidden_units
        self.init_param_scale = init_param_scale
        super().__init__(step_size, max_num_epochs, seed)

    def build(self):
        return mlp_regression_graph()

    def initial_values(self, num_ftrs, rng):
        s, h = self.init_param_scale, self.num_hidden_units
        return {
            "W1": s * rng.standard_normal((h, num_ftrs)),
            "b1": s * rng.standard_normal(h),
            "w2": s * rng.standard_normal(h),
            "b2": s * np.array(rng.standard_normal()),
        }


class MulticlassClassifier(_SGDEstimator):
    """One tanh hidden layer, softmax output, negative log-likelihood."""

    def __init__(self, num_hidden_units=10, step_size=0.005, init_param_scale=0.01,
                 max_num_epochs=1000, num_class=3, seed=0):
        self.num_hidden_units = num_hidden_units
        self.init_param_scale = init_param_scale
        self.num_class = num_class
        super().__init__(step_size, max_num_epochs, seed)

    def build(self):
        return mlp_classifier_graph()

    def initial_values(self, num_ftrs, rng):
        s, h, k = self.init_param_scale, self.num_hidden_units, self.num_class
        return {
            "W1": s * rng.standard_normal((h, num_ftrs)),
            "b1": s * rng.standard_normal(h),
            "W2": s * rng.standard_normal((k, h)),
            "b2": s * rng.standard_normal(k),
        }

    def loss(self, X, y):
        p = self.predict(X)
        return float(-np.mean(np.log(p[np.arange(len(y)), y])))


# ------------------------------------------------------------- the homework


def featurize(x, num_features=400):
    """The assignment's step-function features: feature j of x is 1[x >= j / num_features]."""
    thresholds = np.linspace(0, 1, num_features, endpoint=False)
    return (np.asarray(x, dtype=float)[:, None] >= thresholds).astype(float)


def homework(x_train, y_train, x_test, y_test, X_blobs_train, y_blobs_train,
             X_blobs_test, y_blobs_test, seed=0, scale=1.0):
    """Run the assignment's experiments, with its settings, in this design.

    ``scale`` multiplies every epoch count (1.0 = the assignment's; smaller
    for a quick look). Returns ``{experiment: {"seconds", "train_loss",
    "test_loss"}}`` and ``"total_seconds"``.
    """

    def epochs(n):
        return max(1, int(round(n * scale)))

    F_train, F_test = featurize(x_train), featurize(x_test)
    s_train, s_test = x_train.reshape(-1, 1), x_test.reshape(-1, 1)
    experiments = [
        ("ridge l2=1", RidgeRegression(l2_reg=1.0, step_size=5e-5, max_num_epochs=epochs(2000), seed=seed),
         F_train, y_train, F_test, y_test),
        ("ridge l2=0", RidgeRegression(l2_reg=0.0, step_size=5e-4, max_num_epochs=epochs(500), seed=seed),
         F_train, y_train, F_test, y_test),
        ("linear", LinearRegression(step_size=0.001, max_num_epochs=epochs(1000), seed=seed),
         F_train, y_train, F_test, y_test),
        ("mlp scalar x", MLPRegression(num_hidden_units=10, step_size=1e-3, init_param_scale=5e-4,
                                       max_num_epochs=epochs(5000), seed=seed),
         s_train, y_train, s_test, y_test),
        ("mlp features", MLPRegression(num_hidden_units=10, step_size=5e-4, init_param_scale=0.01,
                                       max_num_epochs=epochs(500), seed=seed),
         F_train, y_train, F_test, y_test),
        ("classifier", MulticlassClassifier(num_hidden_units=10, step_size=0.005, init_param_scale=0.01,
                                            max_num_epochs=epochs(1000), num_class=3, seed=seed),
         X_blobs_train, y_blobs_train, X_blobs_test, y_blobs_test),
    ]
    results = {}
    start = time.perf_counter()
    for name, estimator, Xtr, ytr, Xte, yte in experiments:
        t0 = time.perf_counter()
        estimator.fit(Xtr, ytr)
        results[name] = {
            "epochs": estimator.max_num_epochs,
            "train_loss": estimator.loss(Xtr, ytr),
            "test_loss": estimator.loss(Xte, yte),
            "seconds": time.perf_counter() - t0,
        }
    results["total_seconds"] = time.perf_counter() - start
    return results
