"""A run's self-contained HTML report: final metrics, training curves, embedding map, config."""

from __future__ import annotations

from labelless.report.html import write_report

__all__ = ["write_report"]
