"""Publish targets and base roots per namespace (admin scope)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/v1", tags=["admin"])
