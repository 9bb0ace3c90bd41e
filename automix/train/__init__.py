"""Training: losses (``losses``), the training loop and its configs."""
