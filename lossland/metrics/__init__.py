"""Metrics: pure functions of models, losses and data (gradients, curvature, sharpness, landscape slices)."""
