r"""Structured networks for the handwritten digits: convolutional, recurrent, residual.

Each classifier reads one image x (C, H, W) per example (the digits:
(1, 8, 8), as :func:`models.datasets.load_digits` returns them) and an
integer label y ∈ {0, …, k-1}. They share the head of
:func:`models.mlp_classifier` with ``fused=True``: logits z = W h + b from
the network's features h, the prediction is the softmax probabilities
p = softmax(z), and the objective the fused, stable cross-entropy
-log p_y = logsumexp(z) - z_y (averaged over a batch).
"""

from __future__ import annotations

import fgraph
import fgraph.init
import fgraph.layers as layers
from models.base import Model, positive_int

DIGITS_IMAGE = (1, 8, 8)
DIGITS_CLASSES = 10


def _image_shape(image_shape, what: str) -> tuple[int, int, int]:
    """``image_shape`` as (C, H, W) positive ints, or an error naming it."""
    if not isinstance(image_shape, (tuple, list)) or len(image_shape) != 3:
        raise TypeError(f"{what}: image_shape must be (channels, height, width), got {image_shape!r}")
    c, h, w = (positive_int(n, f"{what}: image_shape[{i}]") for i, n in enumerate(image_shape))
    return c, h, w


def _classes(num_classes, what: str) -> int:
    k = positive_int(num_classes, f"{what}: num_classes")
    if k < 2:
        raise ValueError(f"{what}: num_classes must be at least 2, got {k}")
    return k


def _widths(value, what: str, arg: str) -> tuple[int, ...]:
    """A positive int or a non-empty sequence of them, as a tuple."""
    if isinstance(value, (tuple, list)):
        if not value:
            raise ValueError(f"{what}: {arg} must not be empty")
        return tuple(positive_int(v, f"{what}: {arg}[{i}]") for i, v in enumerate(value))
    return (positive_int(value, f"{what}: {arg}"),)


def _check_pooling(what: str, image: tuple, pool: int, times: int) -> None:
    """A ValueError unless ``times`` poolings by ``pool`` leave at least one pixel a side."""
    side = min(image[1:])
    if side < pool ** times:
        raise ValueError(
            f"{what}: {times} poolings by {pool} need images of at least {pool ** times} pixels"
            f" a side; image_shape {image} has {side}"
        )


def _classifier(what: str, image: tuple, k: int, features, config: dict) -> Model:
    """The model whose logits are ``dense("logits", k)`` of ``features(x)``."""
    x, y = fgraph.input("x", image), fgraph.input("y")
    logits = layers.dense("logits", k)(features(x))
    prediction = fgraph.softmax(logits, name="prediction")
    objective = fgraph.softmax_cross_entropy(logits, y, name="objective")
    return Model(fgraph.graph(prediction=prediction, objective=objective),
                 {"name": what, "image_shape": list(image), "num_classes": k, "prediction": "probabilities", **config})


def cnn_classifier(image_shape=DIGITS_IMAGE, num_classes: int = DIGITS_CLASSES, filters=(8, 16), kernel: int = 3,
                   pool: int = 2, hidden_units: int | None = None) -> Model:
    r"""A convolutional classifier: [conv → relu → max-pool] per entry of ``filters``, then a dense layer.

    Stage i (1-based) is ``layers.conv2d(f"conv{i}", filters[i-1], kernel,
    padding=kernel // 2)`` (the image size kept for odd kernels; params
    ``conv{i}.W`` (F_i, F_{i-1}, kernel, kernel) He-normal, ``conv{i}.b``
    zeros), relu, and ``pool`` × ``pool`` max-pooling (computed as pooling
    then relu, which is the same function with the same gradient, on fewer
    values: relu is monotone); then the features
    are flattened and ``logits.W``, ``logits.b`` (Glorot normal, zeros) map
    them to the k logits. The default on the digits: 8@3×3 → 2×2 pool →
    16@3×3 → 2×2 pool → 16·2·2 = 64 features → 10 logits, 1,898 params
    (``hidden_units=h`` adds a dense relu layer ``hidden`` of h units
    before the logits).
    Prediction: softmax probabilities; objective: cross-entropy.
    """
    what = "cnn_classifier"
    image, k = _image_shape(image_shape, what), _classes(num_classes, what)
    widths = _widths(filters, what, "filters")
    kernel, pool = positive_int(kernel, f"{what}: kernel"), positive_int(pool, f"{what}: pool")
    _check_pooling(what, image, pool, len(widths))
    stages = []
    for i, f in enumerate(widths, start=1):
        # Pooled, then relu: max(relu(x)) = relu(max(x)) (relu is monotone), value and gradient
        # alike, and relu then touches a quarter of the values.
        stages += [layers.conv2d(f"conv{i}", f, kernel, padding=kernel // 2), layers.max_pool2d(pool), layers.relu]
    stages.append(layers.flatten)
    if hidden_units is not None:
        hidden_units = positive_int(hidden_units, f"{what}: hidden_units")
        stages += [layers.dense("hidden", hidden_units, fgraph.init.he_normal()), layers.relu]
    return _classifier(what, image, k, layers.sequential(*stages),
                       {"filters": list(widths), "kernel": kernel, "pool": pool, "hidden_units": hidden_units})


def rnn_classifier(image_shape=DIGITS_IMAGE, num_classes: int = DIGITS_CLASSES, hidden: int = 32,
                   activation: str = "tanh") -> Model:
    r"""A recurrent classifier that reads an image row by row: T = H steps of D = C·W pixels.

    The image x (C, H, W) becomes the sequence s (H, C·W), s_t = row t of
    every channel side by side; ``layers.rnn("rnn", hidden, activation)``
    reads it, h_t = σ(W_x s_t + W_h h_{t-1} + b), h_0 = 0 (params
    ``rnn.W_x`` (hidden, D), ``rnn.W_h`` (hidden, hidden), ``rnn.b``, tied
    across the H steps), and ``logits.W``, ``logits.b`` map the last state
    h_H to the k logits. On the digits: 8 steps of 8 pixels. Prediction:
    softmax probabilities; objective: cross-entropy.
    """
    what = "rnn_classifier"
    image, k = _image_shape(image_shape, what), _classes(num_classes, what)
    hidden = positive_int(hidden, f"{what}: hidden")
    try:
        rnn = layers.rnn("rnn", hidden, activation)
    except ValueError as e:
        raise ValueError(f"{what}: {e}") from None
    c, h, w = image

    def rows(x):
        # (C, H, W) -> (H, C, W) -> (H, C·W); a single channel needs only the reshape.
        return fgraph.reshape(x if c == 1 else fgraph.transpose(x, (1, 0, 2)), (h, c * w), name="rows")

    return _classifier(what, image, k, layers.sequential(rows, rnn),
                       {"hidden": hidden, "activation": activation, "steps": h, "step_features": c * w})


def resnet_classifier(image_shape=DIGITS_IMAGE, num_classes: int = DIGITS_CLASSES, width: int = 16,
                      blocks: int = 2, kernel: int = 3, pool: int = 2) -> Model:
    r"""A small convolutional ResNet: a stem, ``blocks`` residual stages, a dense head.

    The stem h₀ = relu(conv_stem(x)) (``stem.W`` (width, C, k, k), ``stem.b``)
    makes ``width`` channels; stage i = 1 … ``blocks`` is a residual block
    followed by relu and ``pool`` × ``pool`` max-pooling,

        hᵢ = maxpool(relu(hᵢ₋₁ + conv_{i,2}(relu(conv_{i,1}(hᵢ₋₁)))))

    (``block{i}.1.W``/``.b``, ``block{i}.2.W``/``.b``, ``width`` filters of
    k × k, padding k // 2 so that the block keeps the shape x + F(x) needs;
    He normal for the first convolution of each block and zeros for the
    second, so that every block starts as the identity and the signal
    reaches the head unchanged at the first step). ``logits.W``,
    ``logits.b`` map the flattened features to the k logits. Prediction:
    softmax probabilities; objective: cross-entropy.
    """
    what = "resnet_classifier"
    image, k = _image_shape(image_shape, what), _classes(num_classes, what)
    width = positive_int(width, f"{what}: width")
    blocks = positive_int(blocks, f"{what}: blocks")
    kernel, pool = positive_int(kernel, f"{what}: kernel"), positive_int(pool, f"{what}: pool")
    _check_pooling(what, image, pool, blocks)
    if kernel % 2 == 0:
        raise ValueError(f"{what}: kernel must be odd, so that padding kernel // 2 keeps the image size; got {kernel}")
    pad = kernel // 2
    body = [layers.conv2d("stem", width, kernel, padding=pad), layers.relu]
    for i in range(1, blocks + 1):
        block = layers.sequential(
            layers.conv2d(f"block{i}.1", width, kernel, padding=pad), layers.relu,
            layers.conv2d(f"block{i}.2", width, kernel, padding=pad, init=fgraph.init.zeros()),
        )
        body += [layers.residual(block), layers.max_pool2d(pool), layers.relu]  # = relu, then pool (see cnn)
    body.append(layers.flatten)
    return _classifier(what, image, k, layers.sequential(*body),
                       {"width": width, "blocks": blocks, "kernel": kernel, "pool": pool})
