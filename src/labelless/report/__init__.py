"""A run's self-contained HTML report (metrics, curves, embedding map, per-class accuracy,
retrieval grid, config) and the comparison page across runs."""

from __future__ import annotations

from labelless.report.html import RetrievalExamples, write_report

__all__ = ["RetrievalExamples", "write_report"]
