"""The types of fgraph's public API, for readers and type checkers.

Params and data are plain mappings from names to arrays: a gradient has
the same type as the params it belongs to.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, Union

import numpy as np

#: An array, or what converts to one (a number, a nested list).
ArrayLike = Union[np.ndarray, float, int, list]
#: Parameter values (and gradients) by param name.
Params = Mapping[str, np.ndarray]
#: Data by input name; each array may carry one leading batch axis.
Data = Mapping[str, ArrayLike]
#: What a node is: a data input, a trainable param, or the application of a primitive.
Role = Literal["input", "param", "op"]

__all__ = ["ArrayLike", "Data", "Params", "Role"]
