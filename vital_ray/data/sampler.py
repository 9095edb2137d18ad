"""Epoch-shuffled prompt sampling with a small, exact resume state (epoch, position, seed)."""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass


@dataclass
class SamplerState:
    seed: int = 1
    epoch: int = 0
    position: int = 0


class PromptSampler:
    def __init__(self, records: list, seed: int = 1, state: SamplerState | None = None):
        if not records:
            raise ValueError("no usable training records")
        self.records = records
        self.state = state or SamplerState(seed=seed)

    def _order(self, epoch: int) -> list[int]:
        order = list(range(len(self.records)))
        random.Random(self.state.seed * 100003 + epoch).shuffle(order)
        return order

    def next(self, n: int) -> list:
        """The next n records; crossing an epoch boundary continues into the next epoch's order."""
        out = []
        while len(out) < n:
            order = self._order(self.state.epoch)
            take = order[self.state.position:self.state.position + n - len(out)]
            out += [self.records[i] for i in take]
            self.state.position += len(take)
            if self.state.position >= len(order):
                self.state.epoch += 1
                self.state.position = 0
        return out

    def state_dict(self) -> dict:
        return asdict(self.state)

    @classmethod
    def from_state(cls, records: list, state: dict) -> "PromptSampler":
        return cls(records, state=SamplerState(**state))
