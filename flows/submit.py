"""Submitting a backfill to the ``backfill`` deployment: one flow run per chunk of days, each with an
idempotency key derived from its parameters, so repeating the command submits nothing new."""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import date, timedelta
from typing import Any

__all__ = ["chunk_requests", "submit_backfill", "deployment_runs", "DEPLOYMENT"]

DEPLOYMENT = "backfill/backfill"


def chunk_requests(request: dict[str, Any], days: int) -> list[dict[str, Any]]:
    """Split a request's [since, until] into consecutive chunks of ``days`` days."""
    since, until = date.fromisoformat(request["since"]), date.fromisoformat(request["until"])
    out = []
    start = since
    while start <= until:
        end = min(until, start + timedelta(days=days - 1))
        out.append({**request, "since": start.isoformat(), "until": end.isoformat()})
        start = end + timedelta(days=1)
    return out


def idempotency_key(request: dict[str, Any]) -> str:
    blob = json.dumps({k: v for k, v in sorted(request.items()) if k != "dry_run"}, sort_keys=True, default=str)
    return "newsdesk-backfill-" + hashlib.sha256(blob.encode()).hexdigest()[:24]


def submit_backfill(request: dict[str, Any], days: int) -> list[dict[str, Any]]:
    """Create (or find, by idempotency key) one flow run per chunk; does not wait for them."""
    from prefect.deployments import run_deployment

    submitted = []
    for chunk in chunk_requests(request, days):
        key = idempotency_key(chunk)
        run = run_deployment(DEPLOYMENT, parameters={"request": chunk}, idempotency_key=key, timeout=0,
                             as_subflow=False, flow_run_name=f"backfill {chunk['since']}..{chunk['until']}")
        run_obj: Any = asyncio.run(run) if asyncio.iscoroutine(run) else run
        submitted.append({"flow_run_id": str(run_obj.id), "name": run_obj.name, "since": chunk["since"],
                          "until": chunk["until"], "state": run_obj.state_name, "idempotency_key": key})
    return submitted


def deployment_runs(limit: int = 50) -> list[dict[str, Any]]:
    """The backfill deployment's flow runs, newest first (for ``backfill status``)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
    from prefect.client.schemas.sorting import FlowRunSort

    async def read() -> list[dict[str, Any]]:
        async with get_client() as client:
            runs = await client.read_flow_runs(
                deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["backfill"])),
                sort=FlowRunSort.EXPECTED_START_TIME_DESC, limit=limit)
        return [{"flow_run_id": str(r.id), "name": r.name, "state": r.state_name,
                 "since": (r.parameters.get("request") or {}).get("since"),
                 "until": (r.parameters.get("request") or {}).get("until"),
                 "start_time": r.start_time, "end_time": r.end_time} for r in runs]

    return asyncio.run(read())
