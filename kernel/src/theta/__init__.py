"""Theta: version control for machine-learning models, inside Git."""

import pluggy

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("theta")
"""Marker for plugin hook implementations: `@theta.hookimpl def theta_register_formats(...)`."""
