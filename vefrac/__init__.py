"""vefrac: shrinkage cracks in thin layers by phase-field fracture and variational-energy PINNs."""

__version__ = "0.1.0"
