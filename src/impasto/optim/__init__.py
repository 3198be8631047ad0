"""Optimisation loops: pixels (L-BFGS/Adam), coarse-to-fine pyramid, generator training."""
