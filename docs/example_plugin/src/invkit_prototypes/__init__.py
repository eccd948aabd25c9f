"""Example invkit plugin (see docs/plugins.md): everything lives in ``invkit_prototypes.plugin``."""
