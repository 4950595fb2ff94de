"""PyTorch backend: differentiable physics ops, the `cnn` generator, training and inference."""
