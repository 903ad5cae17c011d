"""mtl_registry: one shared transformer encoder, many versioned task heads.

The library is the product; the `mtlreg` command line is a thin layer over these names.
"""

from mtl_registry.errors import DataError, MtlRegError, RegistryError
from mtl_registry.registry import Registry

__version__ = "0.1.0"

__all__ = ["DataError", "MtlRegError", "Registry", "RegistryError", "__version__"]
