"""ptychopinn."""
