"""What the report writes."""

from __future__ import annotations

from pydantic import Field

from edgecompress.config_base import StageConfig


class ReportConfig(StageConfig):
    plots: bool = Field(True, description="Write PNG plots (accuracy vs latency, size per variant).")
