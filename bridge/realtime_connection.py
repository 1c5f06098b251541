"""Opening the OpenAI Realtime WebSocket for one call."""

from __future__ import annotations

from urllib.parse import quote

from websockets.asyncio.client import ClientConnection, connect

MAX_MODEL_MESSAGE_BYTES = 4 * 1024 * 1024


async def open_realtime(base_url: str, api_key: str, model: str, timeout_s: float) -> ClientConnection:
    """Connect with a bounded wait; GA needs no OpenAI-Beta header."""
    return await connect(
        f"{base_url}?model={quote(model)}",
        additional_headers={"Authorization": f"Bearer {api_key}"},
        open_timeout=timeout_s,
        close_timeout=2,
        max_size=MAX_MODEL_MESSAGE_BYTES,
        compression=None,  # μ-law audio does not compress; deflate would only cost CPU
    )
