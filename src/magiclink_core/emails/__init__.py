"""Email templates (HTML and text) and their renderer."""

from .renderer import EmailRenderer as EmailRenderer
from .renderer import LinkEmail as LinkEmail

__all__ = ["EmailRenderer", "LinkEmail"]
