"""pricing.py: finding a model's price and the cost of tokens."""

from __future__ import annotations

from decimal import Decimal

import pytest

from batch_poller.config import ModelPrice
from batch_poller.pricing import cost, price_for

NOVA = ModelPrice(input_per_1k=Decimal("0.00003"), output_per_1k=Decimal("0.00012"))
CLAUDE = ModelPrice(input_per_1k=Decimal("0.0015"), output_per_1k=Decimal("0.0075"))
TABLE = {
    "amazon.nova-lite-v1:0": NOVA,
    "anthropic.claude-sonnet-4-20250514-v1:0": CLAUDE,
}


@pytest.mark.parametrize(
    ("model", "price"),
    [
        ("amazon.nova-lite-v1:0", NOVA),
        ("arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-lite-v1:0", NOVA),
        ("us.amazon.nova-lite-v1:0", NOVA),
        ("eu.amazon.nova-lite-v1:0", NOVA),
        ("global.anthropic.claude-sonnet-4-20250514-v1:0", CLAUDE),
        (
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/"
            "us.anthropic.claude-sonnet-4-20250514-v1:0",
            CLAUDE,
        ),
    ],
)
def test_price_for_known_models(model: str, price: ModelPrice) -> None:
    assert price_for(model, TABLE) is price


@pytest.mark.parametrize(
    "model", [None, "", "amazon.nova-pro-v1:0", "amazon.nova-lite-v1", "xx.amazon.nova-lite-v1:0"]
)
def test_price_for_unknown_models(model: str | None) -> None:
    assert price_for(model, TABLE) is None


def test_price_for_empty_table() -> None:
    assert price_for("amazon.nova-lite-v1:0", {}) is None


def test_cost_is_exact() -> None:
    price = ModelPrice(input_per_1k=Decimal("0.0003"), output_per_1k=Decimal("0.0015"))
    result = cost(price, 1500, 500)
    assert isinstance(result, Decimal)
    assert result == Decimal("0.0012")


def test_cost_of_no_tokens_and_default_output_price() -> None:
    assert cost(NOVA, 0, 0) == 0
    embeddings = ModelPrice(input_per_1k=Decimal("0.00002"))
    assert cost(embeddings, 1_000_000, 999) == Decimal("0.02")
