"""Text-LLM prompt shapes: token counts in and out drawn from lognormals fitted to published
trace statistics, so a scenario can ask for code-assistant or long-answer chat traffic
without a trace file of that service. Sources and fits: `edgeagents/data/PROVENANCE.md`.

Each shape states a median and a mean (or a p90) of input and output tokens; a lognormal with
median m and mean a has sigma = sqrt(2 ln(a / m)), one with median m and 90th percentile q has
sigma = ln(q / m) / z90. Draws are clipped to [1, `max_tokens`].
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

Z90 = 1.2815515655446004
"""The standard normal's 90th percentile."""


class TokenFit(BaseModel):
    """One column's lognormal: its median and the sigma the stated statistics give."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    median: float = Field(gt=0)
    sigma: float = Field(ge=0)
    max_tokens: int = Field(ge=1)

    @classmethod
    def from_mean(cls, median: float, mean: float, max_tokens: int) -> TokenFit:
        return cls(median=median, sigma=math.sqrt(2 * math.log(mean / median)),
                   max_tokens=max_tokens)  # fmt: skip

    @classmethod
    def from_p90(cls, median: float, p90: float, max_tokens: int) -> TokenFit:
        return cls(median=median, sigma=math.log(p90 / median) / Z90, max_tokens=max_tokens)

    @property
    def mean(self) -> float:
        """The unclipped lognormal's mean (clipping moves it by well under 1% for these fits)."""
        return self.median * math.exp(self.sigma**2 / 2)

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        x = rng.lognormal(math.log(self.median), self.sigma, n)
        return np.clip(np.rint(x), 1, self.max_tokens).astype(np.int32)


class TextShape(BaseModel):
    """A text service's token counts: what it is fitted to, and the two fits."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    source: str
    input: TokenFit
    output: TokenFit

    def draw(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Input then output tokens of `n` prompts (independent draws)."""
        return self.input.draw(rng, n), self.output.draw(rng, n)


TEXT_SHAPES: dict[str, TextShape] = {
    s.name: s
    for s in (
        TextShape(
            name="azure-code",
            source="Azure LLM inference trace 2023, coding service (Patel et al., Splitwise, "
            "ISCA 2024): context median 1,469, mean 2,048; generated median 13, mean 28",
            input=TokenFit.from_mean(1469, 2048, 8192),
            output=TokenFit.from_mean(13, 28, 2048),
        ),
        TextShape(
            name="azure-conv",
            source="Azure LLM inference trace 2023, conversation service (Splitwise): "
            "context median 1,020, mean 1,155; generated median 129, mean 211",
            input=TokenFit.from_mean(1020, 1155, 16384),
            output=TokenFit.from_mean(129, 211, 4096),
        ),
        TextShape(
            name="sharegpt-chat",
            source="ShareGPT (as tabulated with LMSYS-Chat-1M, Zheng et al. 2023, and "
            "WildChat, Zhao et al. 2024, Table 1): 3.51 turns, 94.46 user and 348.45 "
            "assistant tokens a turn; each turn re-sends the history, so a request's input "
            "mean is 94.46 + (3.51 - 1) / 2 x (94.46 + 348.45) = 650; spreads approximate",
            input=TokenFit.from_mean(400, 650, 8192),
            output=TokenFit.from_mean(215, 348.45, 4096),
        ),
        TextShape(
            name="burstgpt-chat",
            source="BurstGPT (Wang et al. 2024), ChatGPT conversation log of BurstGPT_1: "
            "request tokens median 481, p90 1,664; response median 229, p90 543",
            input=TokenFit.from_p90(481, 1664, 16384),
            output=TokenFit.from_p90(229, 543, 4096),
        ),
    )
}
"""The shapes a scenario's `sizes.shape` may name."""
