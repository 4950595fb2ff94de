"""The two backends, PyTorch (Lightning) and TensorFlow (Keras 3), behind one interface."""
