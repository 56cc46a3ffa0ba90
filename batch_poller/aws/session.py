"""The AWS session every client of the daemon is made from.

Bedrock reports a running job's record counts (totalRecordCount, processedRecordCount, ...),
but the botocore that aioboto3 pins models none of them, and its parser drops what its model
does not name. botocore's own extension point, a `service-2.sdk-extras.json` merged into the
service model it loads, adds them; a botocore that models them already is unchanged by it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aioboto3
from aiobotocore.session import AioSession

MODEL_EXTRAS = Path(__file__).parent / "models"


def aws_session(region: str, **credentials: Any) -> aioboto3.Session:
    core = AioSession()
    core.get_component("data_loader").search_paths.append(str(MODEL_EXTRAS))
    return aioboto3.Session(botocore_session=core, region_name=region, **credentials)
