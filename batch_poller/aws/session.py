"""The AWS session every client of the daemon is made from.

Bedrock reports a running job's record counts (totalRecordCount, processedRecordCount, ...),
but the botocore that aioboto3 pins models none of them, and its parser drops what its model
does not name. botocore's own extension point, a `service-2.sdk-extras.json` merged into the
service model it loads, adds them; a botocore that models them already is unchanged by it.

The clients are aiobotocore's, made straight from its session: aioboto3's layer over it adds
boto3's resources and S3 transfer methods, which nothing here uses.

A session keeps what botocore's data files hold for as long as its clients live, so they are
read lean (LeanDataFiles): the daemon's two clients take some 6 MB instead of 16.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiobotocore.session import AioSession
from botocore.loaders import JSONFileLoader, create_loader

MODEL_EXTRAS = Path(__file__).parent / "models"
# The services clients are made for: this package's, and those botocore's credential
# providers call (assume-role and web identity: sts; IAM Identity Center: sso, sso-oidc).
SERVICES = frozenset({"bedrock", "s3", "sqs", "sts", "sso", "sso-oidc"})
_OPENERS: tuple[tuple[str, Callable[..., Any]], ...] = (
    (".json", open),
    (".json.gz", gzip.open),
)


class AwsSession:
    """One botocore session: its clients share what it loads (credentials, endpoint data)."""

    def __init__(self, region: str, **credentials: Any) -> None:
        self.region = region
        self.core = AioSession()
        self.core.set_config_variable("region", region)
        loader = create_loader(self.core.get_config_variable("data_path"))
        loader.file_loader = LeanDataFiles()
        loader.search_paths.append(str(MODEL_EXTRAS))
        self.core.register_component("data_loader", loader)
        self._credentials = credentials

    def client(self, service: str, **options: Any) -> Any:
        """An async context manager that opens the client (endpoint_url, config, ...)."""
        if service not in SERVICES:
            raise ValueError(f"no endpoint data is kept for {service!r}: add it to SERVICES")
        return self.core.create_client(
            service, region_name=self.region, **self._credentials, **options
        )


class LeanDataFiles(JSONFileLoader):  # type: ignore[misc]
    """botocore's JSON data files, read as plain dicts (botocore reads OrderedDicts, half as
    large again, from before dicts kept their order), their documentation left empty (only
    docstrings and help() show it), and of endpoints.json, every service's endpoints in every
    region, only those of SERVICES (3 MB less; a service not listed would get its partition's
    defaults)."""

    def load_file(self, file_path: str) -> Any:
        for extension, opener in _OPENERS:
            path = file_path + extension
            if os.path.isfile(path):
                with opener(path, "rb") as file:
                    data = json.loads(file.read(), object_hook=_undocumented)
                if os.path.basename(file_path) == "endpoints":
                    for partition in data.get("partitions", []):
                        services = partition.get("services", {}).items()
                        partition["services"] = {n: e for n, e in services if n in SERVICES}
                return data
        return None


def _undocumented(members: dict[str, Any]) -> dict[str, Any]:
    # Emptied, not removed: botocore reads some of them unguarded. A string only: a structure's
    # member named "documentation" is a dict.
    if isinstance(members.get("documentation"), str):
        members["documentation"] = ""
    return members


def aws_session(region: str, **credentials: Any) -> AwsSession:
    return AwsSession(region, **credentials)
