"""The summary table of a model, as torchinfo and Keras's ``summary()`` print it: layer, output shape and
parameter count with thousands separators, and the totals."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Summary", "SummaryRow"]


@dataclass(frozen=True)
class SummaryRow:
    """One module: its label (Keras name or attribute name), class, nesting depth, last output shape (``None``
    before any call), parameter counts, and whether its parameters exist yet."""

    name: str
    kind: str
    depth: int
    output_shape: tuple[int | None, ...] | None
    params: int
    trainable: int
    built: bool = True


@dataclass(frozen=True)
class Summary:
    """A model's table: one row per module (nested ones indented), with totals (``Module.summary`` fills it).

    ``params`` of a row counts the module and everything inside it.
    """

    model: str
    rows: tuple[SummaryRow, ...]
    total: int
    trainable: int

    @property
    def non_trainable(self) -> int:
        return self.total - self.trainable

    def __repr__(self) -> str:  # the table is printed by Module.summary; a REPL echo stays one line
        return f"Summary(model={self.model!r}, layers={len(self.rows)}, total={self.total:,})"

    def __str__(self) -> str:
        header = ("Layer (type)", "Output Shape", "Param #")
        body = []
        for row in self.rows:
            label = "  " * row.depth + f"{row.name} ({row.kind})"
            shape = "?" if row.output_shape is None else re.sub(r"\s+", "", str(row.output_shape)).replace(",", ", ")
            body.append((label, shape, f"{row.params:,}" + ("" if row.built else " (unbuilt)")))
        widths = [max(len(r[i]) for r in [header, *body]) for i in range(3)]
        rule = "-" * (sum(widths) + 6)
        lines = [f'Model: "{self.model}"', rule.replace("-", "=")]
        lines.append(f"{header[0]:<{widths[0]}}   {header[1]:<{widths[1]}}   {header[2]:>{widths[2]}}")
        lines.append(rule.replace("-", "="))
        for label, shape, params in body:
            lines.append(f"{label:<{widths[0]}}   {shape:<{widths[1]}}   {params:>{widths[2]}}")
        lines.append(rule.replace("-", "="))
        lines.append(f"Total params: {self.total:,}")
        lines.append(f"Trainable params: {self.trainable:,}")
        lines.append(f"Non-trainable params: {self.non_trainable:,}")
        lines.append(rule)
        if any(row.output_shape is None for row in self.rows):
            lines.append(
                "Output shapes show once the model has run: call it on an input, or pass "
                "summary(input_shape=...) with one sample's shape, e.g. (100, 1, 1)."
            )
        return "\n".join(lines)
