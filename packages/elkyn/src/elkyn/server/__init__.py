"""The HTTP side of Elkyn: Firebase's REST and streaming protocol as a lean ASGI app."""

from .app import ElkynApp, parse_query

__all__ = ["ElkynApp", "parse_query"]
