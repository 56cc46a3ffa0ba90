"""A client for the emulator's control API, for tests, the demo and the benchmark."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Self

import aiohttp


class EmulatorControlError(Exception):
    pass


class EmulatorControl:
    def __init__(self, bedrock_url: str) -> None:
        self._base = bedrock_url.rstrip("/") + "/_emulator"
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        self._session = aiohttp.ClientSession()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        assert self._session is not None, "use EmulatorControl as an async context manager"
        async with self._session.request(method, self._base + path, json=body) as response:
            data = await response.json()
            if response.status >= 400:
                raise EmulatorControlError(f"{method} {path}: {response.status} {data}")
            return data

    async def reset(self) -> None:
        await self._call("POST", "/reset")

    async def configure(self, **sections: Any) -> dict[str, Any]:
        """Merges settings, e.g. configure(durations={"in_progress": 0}, faults={...})."""
        result: dict[str, Any] = await self._call("PUT", "/settings", sections)
        return result

    async def settings(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("GET", "/settings")
        return result

    async def calls(self) -> dict[str, int]:
        result: dict[str, int] = await self._call("GET", "/calls")
        return result

    async def freeze_clock(self) -> None:
        await self._call("POST", "/clock", {"freeze": True})

    async def advance_clock(self, seconds: float) -> None:
        await self._call("POST", "/clock", {"advance_seconds": seconds})

    async def job(self, job: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("GET", f"/jobs/{_id(job)}")
        return result

    async def advance(self, job: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("POST", f"/jobs/{_id(job)}/advance")
        return result

    async def finish(self, job: str, status: str, message: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"status": status}
        if message is not None:
            body["message"] = message
        result: dict[str, Any] = await self._call("POST", f"/jobs/{_id(job)}/finish", body)
        return result

    async def set_job_faults(self, job: str, faults: dict[str, Any] | None) -> None:
        """Faults for one job's calls; None clears them."""
        if faults is None:
            await self._call("DELETE", f"/jobs/{_id(job)}/faults")
        else:
            await self._call("PUT", f"/jobs/{_id(job)}/faults", faults)


def _id(job: str) -> str:
    """Control paths take the job id; an ARN's last segment is the id."""
    return job.rsplit("/", 1)[-1]
