"""Configuration errors as one line that names the setting and never shows a secret."""

from __future__ import annotations

import json
import os
from typing import Any, get_args, get_origin

from pydantic import BaseModel
from pydantic_settings import SettingsError

from batch_poller.masking import HIDDEN, mask_endpoint_url, mask_url, mask_webhook_url

ENV_PREFIX = "BATCH_POLLER_"
ENV_DELIMITER = "__"

# A secret whose invalid value is never shown, whatever its type (a number is still the token).
_HIDDEN_SETTINGS = frozenset({"http.admin_token"})
# Settings whose value may carry a credential: how an invalid value is shown.
_MASKED_SETTINGS = {
    "database.url": mask_url,
    "aws.bedrock_endpoint_url": mask_endpoint_url,
    "aws.s3_endpoint_url": mask_endpoint_url,
    "aws.sqs_endpoint_url": mask_endpoint_url,
}


def shown_input(key: str, value: Any) -> str:
    """repr of a setting's invalid value, with secrets hidden at any depth."""
    if key in _HIDDEN_SETTINGS:
        return HIDDEN
    if key == "hooks" or key.startswith("hooks."):
        return repr(_hook_masked(key.rpartition(".")[2], value))
    mask = _MASKED_SETTINGS.get(key)
    return repr(value if mask is None else _masked(value, mask))


def _hook_masked(name: str, value: Any) -> Any:
    """A hook's setting, or a table of them, with every secret hidden and URLs masked."""
    if name in ("secret", "secret_file") and value:
        return HIDDEN
    if name == "url" and isinstance(value, str):
        return mask_webhook_url(value)
    if isinstance(value, dict):
        return {key: _hook_masked(str(key), item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_hook_masked(name, item) for item in value]
    return value


def _masked(value: Any, mask: Any) -> Any:
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, list | tuple):
        return [_masked(item, mask) for item in value]
    if isinstance(value, dict):
        return {key: _masked(item, mask) for key, item in value.items()}
    return value


def describe_settings_error(error: SettingsError, settings: type[BaseModel]) -> str:
    """pydantic-settings' refusal of an environment variable (a list, a table or a section that
    is not JSON) as one line naming the variable; its value is not shown."""
    for name, path in _variables(settings):
        annotation = _annotation(settings, path)
        if annotation is None or not _takes_json(annotation):
            continue
        try:
            json.loads(os.environ[name])
        except ValueError:
            return (
                f"environment {name} is invalid: {'.'.join(path)} takes "
                f"{_kind(annotation)}, written as JSON (for example {_example(annotation)})"
            )
    return f"the environment is invalid: {str(error).splitlines()[0]}"


def _variables(settings: type[BaseModel]) -> list[tuple[str, tuple[str, ...]]]:
    """Each BATCH_POLLER_ variable that names a setting or a section, with its path."""
    found = []
    for name in sorted(os.environ):
        upper = name.upper()
        if upper.startswith(ENV_PREFIX):
            path = tuple(p.lower() for p in upper[len(ENV_PREFIX) :].split(ENV_DELIMITER))
            found.append((name, path))
    return found


def _annotation(model: type[BaseModel], path: tuple[str, ...]) -> Any:
    annotation: Any = model
    for part in path:
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        field = annotation.model_fields.get(part)
        if field is None:
            return None
        annotation = field.annotation
    return annotation


def _takes_json(annotation: Any) -> bool:
    if get_origin(annotation) in (list, dict):
        return True
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _kind(annotation: Any) -> str:
    return "a list" if get_origin(annotation) is list else "a table"


def _example(annotation: Any) -> str:
    if get_origin(annotation) is list:
        return '["first", "second"]'
    if get_origin(annotation) is dict and get_args(annotation):
        return '{"amazon.nova-lite-v1:0": {"input_per_1k": 0.00003}}'
    return '{"key": "value"}'
