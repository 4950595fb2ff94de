"""Simulated scans: test objects, probes, scan patterns and Poisson-noisy diffraction."""
