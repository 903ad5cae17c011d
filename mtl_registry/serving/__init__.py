"""The HTTP service over a `Runtime`."""

from mtl_registry.serving.app import Limits, create_app, serve

__all__ = ["Limits", "create_app", "serve"]
