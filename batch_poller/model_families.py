"""Which family a Bedrock model id belongs to: the shape of its input and of its output."""

from __future__ import annotations

from enum import StrEnum


class Family(StrEnum):
    NOVA = "nova"
    CLAUDE = "claude"
    CONVERSE = "converse"
    TITAN_EMBED = "titan-embed"
    LLAMA = "llama"


def family_for(model_id: str, invocation_type: str | None = None) -> Family:
    """The family of a model id (an ARN or a cross-region profile naming one works too);
    unknown models are taken as Converse, the shape every text model accepts."""
    if invocation_type is not None and invocation_type.lower() == "converse":
        return Family.CONVERSE
    model = model_id.lower()
    if "amazon.nova" in model:
        return Family.NOVA
    if "anthropic.claude" in model:
        return Family.CLAUDE
    if "amazon.titan-embed" in model:
        return Family.TITAN_EMBED
    if "meta.llama" in model:
        return Family.LLAMA
    return Family.CONVERSE
