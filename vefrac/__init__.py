"""vefrac: shrinkage cracks in thin layers by phase-field fracture and variational-energy PINNs.

The Python API (see docs/api.md): `load_scenario`, `run`, `open_run`, `Result`, `Snapshot`,
`run_sweep`, and the crack statistics the CLI uses (`crack_statistics`, `fragments`, ...).
Importing vefrac loads none of them (nor torch): each is imported on first use.
"""

__version__ = "0.1.0"

# name -> module that defines it; read lazily (PEP 562) so that `import vefrac` has no cost
# and no side effect.
_EXPORTS = {
    **dict.fromkeys(["load_scenario", "run", "open_run", "analyze", "Result", "Snapshot"], "api"),
    "crack_pattern": "pattern",
    "run_sweep": "sweep",
    **dict.fromkeys(["crack_statistics", "at2_crack_length", "skeleton_length", "crack_mask", "crack_skeleton",
                     "fragments", "junctions", "crack_overlap", "gradient_energy_density"], "analysis"),
    "Scenario": "config",
    "InputError": "errors",
}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'vefrac' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
