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
- **Without normalisation, at He initialisation** (fan-in, as reslab's nets), a fully-connected net preserves the
  expected squared gradient norm from layer to layer (Hanin 2018): a growth of 0. A 3×3 convolution with zero
  padding does not: its border outputs read taps outside the map, which carry no gradient back, so the gradient's
  energy leaks out at every layer, the more the smaller the map. `padded_gradient_profile` computes the expected
  profile from the convs' geometry alone (derivation in its docstring); on an infinite map it is flat.
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
        return 0.0  # without padding's losses (`padded_gradient_profile`), He initialisation preserves it (Hanin 2018)
    return None


def tap_counts(out_size: int, in_size: int, kernel: int, stride: int, padding: int) -> np.ndarray:
    """(out_size, in_size): how many of a 1-D convolution's taps connect output q to input i (taps that fall in the
    zero padding connect to nothing)."""
    taps = np.zeros((out_size, in_size))
    for q in range(out_size):
        for t in range(kernel):
            i = stride * q + t - padding
            if 0 <= i < in_size:
                taps[q, i] += 1
    return taps


def padded_gradient_profile(convs: list[tuple[int, int, int, int, int]]) -> np.ndarray:
    """log10 of the expected input-gradient norm of each conv of a plain ReLU net without normalisation at He
    (fan-in) initialisation, from its geometry alone: ``convs`` lists each square conv's (kernel, stride, padding,
    input side, output side) from the input to the output, the last one feeding a global average pool. The levels
    are relative (only the shape is a prediction).

    Why: the gradient at a conv's input is Σ over output positions q and taps t of W_t · g(q), with the weights
    independent of the gradient arriving from above (the mean-field assumption of Hanin 2018 and Yang et al.). Its
    expected energy at input position p, summed over the C_in channels, is C_in · Var(W) · Σ_(q,t → p) E(q) =
    (2/k²) Σ E(q), and the ReLU before the conv passes half of it (its mask is 1 half the time, whatever the scale):
    E_in(p) = (1/k²) Σ_(q,t → p) E_out(q). Inside the map every p gets k² terms and the energy is preserved (Hanin's
    0); at the border, taps that fall in the padding carry none back. The pool spreads the gradient evenly over the
    last map's positions. In the steady state of many convs on an n×n map the energy falls per layer by the top
    eigenvalue of the tap operator, ((1 + 2 cos(π/(n+1))) / 3)² for 3×3 (tested); the profile holds the transient
    from the even start too."""
    energy = np.ones((convs[-1][4], convs[-1][4]))
    logs = []
    for kernel, stride, padding, in_size, out_size in reversed(convs):
        taps = tap_counts(out_size, in_size, kernel, stride, padding)
        energy = taps.T @ energy @ taps / kernel**2
        logs.append(0.5 * np.log10(energy.sum()))
    return np.array(logs[::-1])


def residual_stream_variance(blocks: int) -> np.ndarray:
    """De and Smith's stream variance entering each of ``blocks`` BN residual blocks, the stem's output having
    variance 1 and every branch adding 1: 1, 2, ..., blocks (within a stage; option A's zero padding halves it where
    the channels double)."""
    return np.arange(1, blocks + 1, dtype=float)
