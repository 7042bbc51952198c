"""matplotlib, imported on first use with the non-interactive Agg backend, for every figure tconv draws
(the tools' figures and the models' training pictures)."""

from __future__ import annotations

from typing import Any

__all__ = ["pyplot"]


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend; a clear ``ImportError`` naming the extra when it is missing."""
    try:
        import matplotlib
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("tconv's figures need matplotlib; install it with pip install 'tconv[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
