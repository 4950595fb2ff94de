"""From a trained model's patches to an object: stitching, the :class:`Reconstruction` result
and physics-based refinement."""
