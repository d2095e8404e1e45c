"""What theory predicts for signal propagation at initialisation, computed from the papers' formulas (numpy and
scipy only), for `reslab.analysis.signal` to set beside its measurements.

- **Yang, Pennington, Rao, Sohl-Dickstein and Schoenholz 2019** ("A Mean Field Theory of Batch Normalization", ICLR;
  eq. 25 / Theorem 8 of the OpenReview text, Theorem 3.10 of arXiv 1902.08129): in a wide fully-connected ReLU net
  with batch norm over a batch of B, at initialisation, the squared gradient norm grows by `bn_gradient_rate`
  (B) per layer from the output toward the input, for any initialisation; B → ∞ gives π/(π−1) ≈ 1.467, about 1.211
  per layer in the norm, and a linear batch-normalised net (B−2)/(B−3). The formula is the paper's with α = 1 (ReLU)
  and J the arccosine kernel of its Theorem 5; `relu_gradient_rate_integral` is the same rate from the general
  formula of its Theorem 7 (eq. 24), an independent check (tested).
- **A convolution's BN** normalises each channel over batch × height × width, so its B is that product, in practice
  the large-batch limit. The theory is for fully-connected nets: for convolutions it is a prediction to test.
- **Without normalisation, at He initialisation** (fan-in, as reslab's nets), the expected squared gradient norm is
  preserved from layer to layer (Hanin 2018), a growth of 0 in expectation.
- **Residual nets with BN** (De and Smith 2020): each branch ends in BN (variance 1) and adds to the stream, so the
  stream's variance after k blocks grows like k + 1 and each branch is downscaled by about √(k + 1) relative to it
  (`residual_stream_variance`). A block then multiplies the squared gradient by about 1 + c/k, so the gradient grows
  like a power of the block index, not exponentially: the rise per layer falls as the net gets deeper, where an
  exponential's stays constant. That is what the summary compares across depths.
"""

from __future__ import annotations

import numpy as np

LARGE_BATCH_RATE = np.pi / (np.pi - 1)  # Yang et al.'s B → ∞ limit of the squared-gradient growth per layer


def arccos_kernel(c: float) -> float:
    """Yang et al.'s J(c) for ReLU (Theorem 5; Cho and Saul's arccosine kernel of degree 1, normalised so J(1) = 1)."""
    return (np.sqrt(1 - c * c) + (np.pi - np.arccos(c)) * c) / np.pi


def arccos_kernel_slope(c: float) -> float:
    """dJ/dc = (π − arccos c) / π."""
    return (np.pi - np.arccos(c)) / np.pi


def bn_gradient_rate(batch: float, kernel=arccos_kernel, kernel_slope=arccos_kernel_slope) -> float:
    """λ(B): the per-layer growth of the squared gradient norm in a batch-normalised net whose nonlinearity has the
    kernel J (Yang et al. eq. 25 with α = 1), for B > 3; B = inf gives the ReLU limit π/(π−1). The ReLU's kernel by
    default; J(c) = c, J' = 1 (a linear net) gives the paper's (B−2)/(B−3)."""
    if np.isinf(batch):
        return float(LARGE_BATCH_RATE)
    if batch <= 3:
        raise ValueError(f"Yang et al.'s rate needs a batch of more than 3, got {batch}")
    b, alpha = float(batch), 1.0
    c = -1.0 / (b - 1)
    j1, jc, djc = kernel(1.0), kernel(c), kernel_slope(c)
    first = (b - 3 + 2 * alpha) * ((2 * alpha - 1) * djc + alpha**2 * (b - 1) * j1)
    first /= (2 * alpha - 1) * (b - 3) * (b - 1) * (j1 - jc)
    return float(first - alpha**2 / (b - 3))


def relu_gradient_rate_integral(batch: int) -> float:
    """The ReLU rate from Yang et al.'s general formula (Theorem 7, eq. 24) by numerical integration over the
    ellipse Z > 0, an independent check of `bn_gradient_rate`. φ' is the indicator of z > 0, so the first term
    integrates over z1 > 0 and the second over z1, z2 > 0."""
    from scipy import integrate
    from scipy.special import gamma

    b = float(batch)
    q = (b - 1) / (2 * np.sqrt(np.pi)) * gamma(1.5) * gamma((b - 1) / 2) / gamma((b + 1) / 2)  # Theorem 5's q*
    c = arccos_kernel(-1 / (b - 1))  # and c*

    def big_z(z2, z1):
        return max(b * (b - 2) - b * (z1 * z1 + z2 * z2) + (z1 - z2) ** 2, 0.0) ** ((b - 5) / 2)

    def edge(z1, sign):  # the ellipse's boundary in z2 at this z1 (Z = 0)
        return (-z1 + sign * np.sqrt(max(z1 * z1 + (b - 1) * (b * (b - 2) - (b - 1) * z1 * z1), 0.0))) / (b - 1)

    top = np.sqrt(b - 1)  # the ellipse's extent in z1
    first, _ = integrate.dblquad(
        lambda z2, z1: (b - 1 - z1 * z1) * big_z(z2, z1), 0, top, lambda z1: edge(z1, -1), lambda z1: edge(z1, 1)
    )
    second, _ = integrate.dblquad(
        lambda z2, z1: (1 + z1 * z2) * big_z(z2, z1), 0, top, 0, lambda z1: max(edge(z1, 1), 0.0)
    )
    return float((b * (b - 2)) ** (2 - b / 2) / (q * (1 - c) * 2 * np.pi) * (first + second))


def decades_per_layer(rate: float) -> float:
    """A squared-norm growth ``rate`` per layer as decades of the norm per layer: log10 √rate."""
    return float(0.5 * np.log10(rate))


def predicted_growth(norm: str, shortcut: str, batch_positions: float) -> float | None:
    """The predicted growth of log10 of the gradient norm per layer toward the input, at initialisation, for a net
    with ``norm`` (batch | none) and ``shortcut`` (none = plain); None where no theory here predicts one. BN's batch is
    the positions it normalises over (batch × height × width)."""
    if shortcut != "none":
        return None  # with BN a power law, not a rate (De and Smith): compared across depths, not per layer
    if norm == "batch":
        return decades_per_layer(bn_gradient_rate(batch_positions))
    if norm == "none":
        return 0.0  # He initialisation preserves the expected squared gradient norm (Hanin 2018)
    return None


def residual_stream_variance(blocks: int) -> np.ndarray:
    """De and Smith's stream variance entering each of ``blocks`` BN residual blocks, the stem's output having
    variance 1 and every branch adding 1: 1, 2, ..., blocks (within a stage; option A's zero padding halves it where
    the channels double)."""
    return np.arange(1, blocks + 1, dtype=float)
