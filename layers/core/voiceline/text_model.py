"""One structured answer from a text model: OpenAI's Responses API with a strict JSON schema, over urllib.

The standard library's client keeps the core layer free of another HTTP dependency. Failures come in
two kinds, because the caller must decide whether asking again could help:
TextModelUnavailable (timeout, unreachable, 408/409/429/5xx) may pass; TextModelBadReply (any other
refusal of the request, a reply that is not the schema's JSON) would only repeat.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

import jsonschema

MAX_REPLY_BYTES = 1_000_000
_TRANSIENT_STATUSES = {408, 409, 429}  # and every 5xx


class TextModelUnavailable(RuntimeError):
    """The model could not be asked right now; asking again later may work."""


class TextModelBadReply(RuntimeError):
    """The model refused the request or answered something other than the schema's JSON; asking again would not help."""


@dataclass(frozen=True)
class TextModelReply:
    data: dict[str, Any]
    model: str
    """The model that answered, as the reply names it (e.g. gpt-4.1-mini-2025-04-14)."""


@dataclass(frozen=True)
class TextModel:
    api_base: str  # e.g. https://api.openai.com, no trailing /v1
    api_key: str
    model: str
    timeout_s: float
    max_output_tokens: int = 1_000

    def answer(self, instructions: str, text: str, schema_name: str, schema: dict[str, Any]) -> TextModelReply:
        """The model's answer to `text`, as a dict valid against `schema` (checked here too, not only trusted)."""
        body = {
            "model": self.model,
            "instructions": instructions,
            "input": text,
            "text": {"format": {"type": "json_schema", "name": schema_name, "schema": schema, "strict": True}},
            "max_output_tokens": self.max_output_tokens,
            "store": False,
        }
        reply = self._post("/v1/responses", body)
        data = _structured_output(reply)
        try:
            jsonschema.validate(data, schema)
        except jsonschema.ValidationError as error:
            raise TextModelBadReply(f"the answer does not match the schema: {error.message}") from None
        return TextModelReply(data, str(reply.get("model") or self.model))

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(
            self.api_base.rstrip("/") + path, data=json.dumps(body).encode(), method="POST",
            headers={"Authorization": f"Bearer {self.api_key}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                raw = response.read(MAX_REPLY_BYTES + 1)
        except urllib.error.HTTPError as error:
            message = _error_message(error)
            if error.code in _TRANSIENT_STATUSES or error.code >= 500:
                raise TextModelUnavailable(f"HTTP {error.code}: {message}") from None
            raise TextModelBadReply(f"HTTP {error.code}: {message}") from None
        except (urllib.error.URLError, http.client.HTTPException, TimeoutError, ConnectionError) as error:
            reason = getattr(error, "reason", error)
            raise TextModelUnavailable(f"no answer within {self.timeout_s:g} s or unreachable: {reason}") from None
        if len(raw) > MAX_REPLY_BYTES:
            raise TextModelBadReply(f"the reply is over {MAX_REPLY_BYTES} bytes")
        try:
            reply = json.loads(raw)
        except ValueError:
            raise TextModelBadReply(f"the reply is not JSON: {raw[:200]!r}") from None
        if not isinstance(reply, dict):
            raise TextModelBadReply(f"the reply is not a JSON object: {raw[:200]!r}")
        return reply


def _error_message(error: urllib.error.HTTPError) -> str:
    """OpenAI's `{"error": {"message": …}}`, or the start of whatever else came back."""
    try:
        raw = error.read(4_000)
    except (OSError, TimeoutError):
        return error.reason or ""
    try:
        return str(json.loads(raw)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return raw[:200].decode(errors="replace") or str(error.reason)


def _structured_output(reply: dict[str, Any]) -> dict[str, Any]:
    """The JSON in the reply's output_text; a refusal or a cut-off answer is a bad reply."""
    if reply.get("status") != "completed":
        details = reply.get("incomplete_details") or reply.get("error") or {}
        raise TextModelBadReply(f"the response is {reply.get('status')!r}, not completed: {details}")
    for item in reply.get("output") or []:
        if not isinstance(item, dict) or item.get("type") != "message":
            continue  # reasoning items come before the message on reasoning models
        for part in item.get("content") or []:
            if not isinstance(part, dict):
                continue
            if part.get("type") == "refusal":
                raise TextModelBadReply(f"the model refused: {part.get('refusal')}")
            if part.get("type") == "output_text":
                try:
                    data = json.loads(part.get("text") or "")
                except ValueError:
                    raise TextModelBadReply(f"output_text is not JSON: {str(part.get('text'))[:200]!r}") from None
                if not isinstance(data, dict):
                    raise TextModelBadReply("output_text is not a JSON object")
                return data
    raise TextModelBadReply("the response has no output_text")
