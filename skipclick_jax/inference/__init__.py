"""Fast interactive inference: the compiled click step (`ClickEngine`) and the click session API."""

from .compile_cache import enable_compilation_cache
from .engine import ClickEngine
from .session import ClickSession, SessionClick, as_rgb_float, encode_image

__all__ = [
    "ClickEngine", "ClickSession", "SessionClick", "as_rgb_float", "enable_compilation_cache", "encode_image",
]
