"""The engine: which algorithm runs a call, and the entry points that run it.

=============  ==========================================================================================
``registry``   the ``Algorithm`` interface, the registered algorithm objects, ``use_algorithm``, ``avoid_algorithms``
``planner``    the choice among them (rules and the cost model), the same for every entry point
``layout``     the compute dtype and batch axis on the way in, the caller's dtype on the way out
``run``        ``run``, ``run_weight_grad``, ``run_transpose_grads``, ``run_bias_grad``
=============  ==========================================================================================

The algorithms themselves are in :mod:`tconv.implementations`; every number the planner and they decide by
is in :mod:`tconv._tuning`.
"""

from .registry import algorithms, avoid_algorithms, use_algorithm
from .run import run, run_bias_grad, run_transpose_grads, run_weight_grad

__all__ = [
    "algorithms",
    "avoid_algorithms",
    "run",
    "run_bias_grad",
    "run_transpose_grads",
    "run_weight_grad",
    "use_algorithm",
]
