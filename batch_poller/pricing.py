"""Cost of tokens from the `[pricing]` table: batch prices per 1,000 tokens by model id."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from batch_poller.config import ModelPrice

# Cross-region inference profiles put a geography before the model id.
_PROFILE_PREFIXES = ("us.", "eu.", "apac.", "us-gov.", "ca.", "jp.", "au.", "global.")
_THOUSAND = Decimal(1000)


def price_for(model_id: str | None, table: Mapping[str, ModelPrice]) -> ModelPrice | None:
    """The price of a model id, an ARN ending in one, or a cross-region profile of one."""
    if not model_id:
        return None
    candidates = [model_id, model_id.rsplit("/", 1)[-1]]
    for candidate in list(candidates):
        for prefix in _PROFILE_PREFIXES:
            if candidate.startswith(prefix):
                candidates.append(candidate.removeprefix(prefix))
    for candidate in candidates:
        if candidate in table:
            return table[candidate]
    return None


def cost(price: ModelPrice, input_tokens: int, output_tokens: int) -> Decimal:
    return (price.input_per_1k * input_tokens + price.output_per_1k * output_tokens) / _THOUSAND
