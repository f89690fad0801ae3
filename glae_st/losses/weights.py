"""Checks shared by the glae-st losses."""

from __future__ import annotations


def check_term_weights(**weights: float) -> None:
    """Raise a ValueError unless every loss-term weight is >= 0 and at least one is positive."""
    if any(weight < 0 for weight in weights.values()) or not any(weights.values()):
        names = " and ".join(weights)
        values = " and ".join(str(weight) for weight in weights.values())
        raise ValueError(f"{names} must be >= 0 and not all 0, got {values}.")
