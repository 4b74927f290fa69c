"""The distributor API's request and response bodies, and the rows they are made from.

msgspec Structs, so the OpenAPI document at /schema is the real shape, and unknown fields in a
request are refused. Money goes out as Decimal strings (6 places), times as UTC with `Z`.
"""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from msgspec import Meta, Struct

from modules.pipeline_ops.pricing import q6

MAX_UNITS = 10**15


class AdmitIn(Struct, forbid_unknown_fields=True):
    request_id: Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[\x21-\x7e]+$",
                                    description="Your idempotency key: the same value again returns the first "
                                                "answer and is never charged twice.",
                                    examples=["order-20261123-0001"])]
    units: Annotated[int, Meta(ge=0, le=MAX_UNITS, description="Units to charge at admission (default 1); "
                                                               "finish may correct them.", examples=[1])] = 1


class FinishIn(Struct, forbid_unknown_fields=True):
    status: Annotated[Literal["succeeded", "failed"], Meta(examples=["succeeded"])]
    units: Annotated[int, Meta(ge=0, le=MAX_UNITS, description="Final units (omit to keep the admitted units).",
                               examples=[1200])] | None = None


class QuotaOut(Struct):
    limit: Annotated[str, Meta(examples=["pipeline.daily"], description=(
        "distributor.* = your account's limits; link.* = your quota on this pipeline; pipeline.* = the "
        "pipeline's total capacity, shared by all its distributors."))]
    max: int | None
    used: int
    remaining: int | None
    reset: Annotated[int | None, Meta(description="Seconds until the period restarts (null for concurrency).")]


class CallOut(Struct):
    call_id: Annotated[str, Meta(examples=["019a9f2c6b1e4d2a9c0b7e3f5a6d8c10"])]
    pipeline: Annotated[str, Meta(examples=["ocr-invoice"])]
    request_id: str
    status: Annotated[str, Meta(examples=["running"], description="running, succeeded, failed or expired")]
    version_no: int | None
    units: int
    unit_price: Annotated[str | None, Meta(examples=["0.020000"], description="Decimal string")]
    amount: Annotated[str | None, Meta(examples=["0.020000"], description="Decimal string")]
    currency: Annotated[str, Meta(examples=["CNY"])]
    started_at: Annotated[str, Meta(examples=["2026-11-23T08:00:00Z"])]
    lease_expires_at: str | None
    finished_at: str | None = None
    latency_ms: int | None = None
    quotas: list[QuotaOut] | None = None


class PriceOut(Struct):
    mode: Annotated[str, Meta(examples=["unit"], description="unit or package")]
    unit_price: Annotated[str, Meta(examples=["0.020000"])]
    package_units: int | None
    package_price: str | None
    currency: Annotated[str, Meta(examples=["CNY"])]
    billing_unit: Annotated[str, Meta(examples=["call"])]


class StepOut(Struct):
    seq: int
    name: str
    step_type: str | None
    model: str | None
    parallel_group: str | None


class PipelineOut(Struct):
    code: Annotated[str, Meta(examples=["ocr-invoice"])]
    name: str
    description: str | None
    version_no: int
    price: PriceOut
    steps: list[StepOut] | None = None


class UsageRow(Struct):
    date: Annotated[str, Meta(examples=["2026-11-23"], description="Business day (see `timezone`).")]
    pipeline: str
    currency: str
    calls: int
    running: int
    succeeded: int
    failed: int
    expired: int
    units: int
    amount: Annotated[str, Meta(examples=["12.340000"])]


class RejectionRow(Struct):
    date: Annotated[str, Meta(examples=["2026-11-23"], description="Business day (see `timezone`).")]
    pipeline: Annotated[str | None, Meta(examples=["ocr-invoice"], description="null: no such pipeline code")]
    reason: Annotated[str, Meta(examples=["link.daily"], description=(
        "The limit a 429 named, `not_found` (not offered to you) or `unauthorized` (account not active)."))]
    refused: int


class UsageOut(Struct):
    timezone: Annotated[str, Meta(examples=["Asia/Shanghai"])]
    date_from: Annotated[str, Meta(examples=["2026-11-17"])]
    date_to: Annotated[str, Meta(examples=["2026-11-23"])]
    rows: list[UsageRow]
    rejections: Annotated[list[RejectionRow], Meta(description=(
        "Calls refused (no usage row, never charged), counted per day, pipeline and reason; written every few "
        "seconds, so the last seconds may be missing."))] = []


class StatementLine(Struct):
    pipeline: Annotated[str, Meta(examples=["ocr-invoice"])]
    name: str
    currency: Annotated[str, Meta(examples=["CNY"])]
    price_mode: Annotated[str | None, Meta(examples=["unit"], description="unit or package (null: calls "
                                                                          "admitted before the mode was kept)")]
    calls: int
    units: int
    amount: Annotated[str, Meta(examples=["12.340000"], description="Decimal string, exact")]
    month: Annotated[str | None, Meta(examples=["2026-10"], description="Adjustments: the closed month they correct")
                     ] = None


class StatementTotal(Struct):
    currency: Annotated[str, Meta(examples=["CNY"])]
    calls: int
    units: int
    amount: Annotated[str, Meta(examples=["12.340000"])]


class StatementOut(Struct):
    month: Annotated[str, Meta(examples=["2026-11"])]
    timezone: Annotated[str, Meta(examples=["Asia/Shanghai"])]
    status: Annotated[Literal["open", "closed"], Meta(description=(
        "open: counted now from your calls; closed: frozen when the month was closed, never changes."))]
    closed_at: str | None
    lines: list[StatementLine]
    adjustments: Annotated[list[StatementLine], Meta(description=(
        "Changes to the previous (closed) month's calls after it was closed, such as late finishes."))]
    totals: Annotated[list[StatementTotal], Meta(description="Per currency: lines plus adjustments.")]


class PipelineQuota(Struct):
    pipeline: str
    quotas: list[QuotaOut]


class QuotaReport(Struct):
    timezone: str
    distributor: list[QuotaOut]
    pipelines: list[PipelineQuota]


def money(value: Any) -> str | None:
    return None if value is None else str(q6(Decimal(value)))


def stamp(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat() + "Z"


def call_out(call: dict[str, Any], quotas: list[dict[str, Any]] | None = None) -> CallOut:
    return CallOut(call_id=call["id"], pipeline=call["code"], request_id=call["request_id"], status=call["status"],
                   version_no=call["version_no"], units=int(call["units"]), unit_price=money(call["unit_price"]),
                   amount=money(call["amount"]), currency=call["currency"], started_at=stamp(call["started_at"]),
                   lease_expires_at=stamp(call["lease_expires_at"]), finished_at=stamp(call.get("finished_at")),
                   latency_ms=call.get("latency_ms"),
                   quotas=None if quotas is None else [QuotaOut(**q) for q in quotas])
