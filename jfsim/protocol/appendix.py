"""Where Jungfraujoch puts the user's appendices (stream.md §7).

``header_appendix`` (any JSON value given to the broker's ``/start``) travels as the start
message's ``user_data`` under the key ``user``; ``image_appendix`` is the image message's
``user_data`` itself. DECTRIS puts ``header_appendix`` directly in ``user_data``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jfsim.protocol.message import Message

__all__ = ["HEADER_APPENDIX_KEY", "header_appendix", "image_appendix", "start_user_data"]

HEADER_APPENDIX_KEY = "user"


def start_user_data(appendix: Any) -> dict[str, Any]:
    """The start message's ``user_data`` carrying ``appendix`` the Jungfraujoch way."""
    return {HEADER_APPENDIX_KEY: appendix}


def header_appendix(start: Message) -> Any:
    """The header appendix of a start message, or None when it carries none."""
    user_data = start.get("user_data")
    if isinstance(user_data, Mapping):
        return user_data.get(HEADER_APPENDIX_KEY)
    return None


def image_appendix(image: Message) -> Any:
    """The image appendix of an image message (its ``user_data``), or None."""
    return image.get("user_data")
