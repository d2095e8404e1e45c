"""reslab: plain vs residual nets (He et al. 2016, §4.2), trained, measured and plotted."""

__version__ = "0.1.0"
