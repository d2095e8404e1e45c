"""Instruments: per-layer gradient norms and layer responses, measured during training (no story)."""

from reslab.instruments.monitors import GradNormMonitor, ResponseMonitor, response_layers

__all__ = ["GradNormMonitor", "ResponseMonitor", "response_layers"]
