"""A plugin that fails as it is imported."""

raise RuntimeError("theta-broken-import cannot start: this plugin is broken on purpose")
