"""Email templates (HTML and text) and their renderer."""

from .renderer import EmailRenderer as EmailRenderer
from .renderer import LinkEmail as LinkEmail
from .renderer import NoticeEmail as NoticeEmail

__all__ = ["EmailRenderer", "LinkEmail", "NoticeEmail"]
