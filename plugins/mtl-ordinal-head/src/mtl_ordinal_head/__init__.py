"""mtl-ordinal-head: the `ordinal` head type (1-5 ratings) for mtl_registry, as a plugin."""

from mtl_ordinal_head.coral import OrdinalModule, coral_loss, level_probabilities
from mtl_ordinal_head.head import OrdinalHead

__all__ = ["OrdinalHead", "OrdinalModule", "coral_loss", "level_probabilities"]
