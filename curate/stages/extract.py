"""`extract`: main text out of HTML with trafilatura (precision mode), with a per-document time limit."""

from __future__ import annotations

import pandas as pd
from pydantic import Field

from curate.extract_sandbox import ExtractSandbox, ExtractTimeout
from curate.registry import register
from curate.stage import Stage, StageConfig, StageResult


class ExtractConfig(StageConfig):
    favor_precision: bool = Field(
        True, description="trafilatura precision mode: less boilerplate, less recall."
    )
    include_tables: bool = Field(True, description="Keep text inside <table> elements.")
    include_comments: bool = Field(False, description="Keep user comment sections.")
    timeout_seconds: float = Field(
        5.0, gt=0, description="Per-document limit; slower pages drop as extract_timeout."
    )
    keep_html: bool = Field(False, description="Keep the html column after extraction (large).")


@register
class Extract(Stage):
    """HTML → text with trafilatura in a killable child process; empty results drop as extract_empty."""

    name = "extract"
    Config = ExtractConfig

    def __init__(self, config: ExtractConfig) -> None:
        super().__init__(config)
        # trafilatura's `deduplicate` keeps a per-process cache, so its output would depend on which
        # documents a worker saw before: off, to keep results identical for any number of workers.
        self.sandbox = ExtractSandbox(
            {
                "favor_precision": config.favor_precision,
                "include_tables": config.include_tables,
                "include_comments": config.include_comments,
                "deduplicate": False,
                "output_format": "txt",
            }
        )

    def process(self, batch: pd.DataFrame) -> StageResult:
        texts, reasons = [], []
        html_col = batch["html"] if "html" in batch else pd.Series([None] * len(batch), index=batch.index)
        text_col = batch["text"] if "text" in batch else pd.Series([None] * len(batch), index=batch.index)
        for html, text in zip(html_col, text_col, strict=True):
            if isinstance(text, str) and text.strip() and not isinstance(html, str):
                texts.append(text)  # WET conversion records arrive as text already
                reasons.append(None)
                continue
            try:
                extracted = (
                    self.sandbox.extract(html, self.config.timeout_seconds) if isinstance(html, str) else None
                )
            except ExtractTimeout:
                texts.append(None)
                reasons.append("extract_timeout")
                continue
            except RuntimeError:  # trafilatura raised inside the child on this page
                texts.append(None)
                reasons.append("extract_error")
                continue
            extracted = extracted.strip() if extracted else ""
            texts.append(extracted or None)
            reasons.append(None if extracted else "extract_empty")
        batch = batch.assign(text=pd.Series(texts, index=batch.index, dtype=object))
        if not self.config.keep_html and "html" in batch:
            batch = batch.drop(columns=["html"])
        return StageResult.split(batch, pd.Series(reasons, index=batch.index, dtype=object))
