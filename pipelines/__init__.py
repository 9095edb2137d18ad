"""Drivers: DGRPO (RL), SFT, evaluation and the 4-stage recipe."""
