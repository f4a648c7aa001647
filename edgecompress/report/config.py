"""What the report writes."""

from __future__ import annotations

from pydantic import Field

from edgecompress.config_base import StageConfig


class ReportConfig(StageConfig):
    plots: bool = Field(True, description="Write PNG plots (accuracy vs latency, size per variant).")
    max_accuracy_drop: float = Field(
        1.0,
        ge=0,
        le=100,
        description="The fastest and smallest variants named in the report are picked among those not flagged "
        "by their own quantizer check whose validation accuracy is at most this many points below the "
        "teacher's; the same rule for every variant (test figures never decide).",
    )
    operating_point: str | None = Field(
        None,
        max_length=2000,
        description="How the recipe's operating point was chosen, shown at the top of the report "
        "(edgecompress search writes it into search/chosen.yaml).",
    )
