"""Model output in the shape each model family really returns, with deterministic token counts.

Token counts are functions of the text alone (`count_tokens`), so tests can recompute sums.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from batch_poller.model_families import Family


def count_tokens(text: str) -> int:
    """The emulator's tokenizer: one token per whitespace-separated word, at least one."""
    return max(1, len(text.split()))


def prompt_text(model_input: Any) -> str:
    """Every string inside a model input, joined: what the emulator 'reads' of a prompt."""
    return " ".join(_strings(model_input))


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            # Images and documents are echoed back but are not text a model counts as words.
            if key not in ("bytes", "source", "image", "document"):
                yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def reply_text(prompt: str, record_id: str) -> str:
    """A short deterministic answer to a prompt."""
    words = prompt.split()
    digest = hashlib.sha256(f"{record_id}:{prompt}".encode()).hexdigest()[:8]
    return f"Answer {digest} to: " + " ".join(words[:12])


@dataclass(frozen=True)
class Usage:
    input_tokens: int
    output_tokens: int


def model_output(
    family: Family, model_id: str, record_id: str, model_input: Any, embedding_dimensions: int
) -> tuple[dict[str, Any], Usage]:
    """The modelOutput object of one successful record and the tokens it used."""
    prompt = prompt_text(model_input)
    input_tokens = count_tokens(prompt)
    if family is Family.TITAN_EMBED:
        return _titan_embedding(prompt, input_tokens, embedding_dimensions), Usage(input_tokens, 0)
    text = reply_text(prompt, record_id)
    usage = Usage(input_tokens, count_tokens(text))
    return _SHAPES[family](text, usage, model_id, record_id), usage


def _messages(text: str, usage: Usage) -> dict[str, Any]:
    """What Nova and the Converse invocation type have in common."""
    return {
        "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
        "stopReason": "end_turn",
        "usage": {
            "inputTokens": usage.input_tokens,
            "outputTokens": usage.output_tokens,
            "totalTokens": usage.input_tokens + usage.output_tokens,
        },
    }


def _nova(text: str, usage: Usage, model_id: str, record_id: str) -> dict[str, Any]:
    output = _messages(text, usage)
    output["usage"].update(cacheReadInputTokenCount=0, cacheWriteInputTokenCount=0)
    return output


def _claude(text: str, usage: Usage, model_id: str, record_id: str) -> dict[str, Any]:
    message_id = hashlib.sha256(record_id.encode()).hexdigest()[:24]
    return {
        "id": f"msg_bdrk_{message_id}",
        "type": "message",
        "role": "assistant",
        "model": model_id.rsplit("/", 1)[-1].removeprefix("anthropic."),
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens},
    }


def _converse(text: str, usage: Usage, model_id: str, record_id: str) -> dict[str, Any]:
    return {**_messages(text, usage), "metrics": {"latencyMs": 100 + usage.output_tokens * 7}}


def _llama(text: str, usage: Usage, model_id: str, record_id: str) -> dict[str, Any]:
    return {
        "generation": text,
        "prompt_token_count": usage.input_tokens,
        "generation_token_count": usage.output_tokens,
        "stop_reason": "stop",
    }


def _titan_embedding(prompt: str, input_tokens: int, dimensions: int) -> dict[str, Any]:
    digest = hashlib.sha256(prompt.encode()).digest()
    vector = [round((digest[i % len(digest)] - 128) / 128, 6) for i in range(dimensions)]
    return {"embedding": vector, "inputTextTokenCount": input_tokens}


_SHAPES: dict[Family, Callable[[str, Usage, str, str], dict[str, Any]]] = {
    Family.NOVA: _nova,
    Family.CLAUDE: _claude,
    Family.CONVERSE: _converse,
    Family.LLAMA: _llama,
}
