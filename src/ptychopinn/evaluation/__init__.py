"""How good is a reconstruction: metrics against a reference object, and the data fit (no
reference needed)."""
