"""The seven questions of the assignment: title, the assignment's engine, analyses."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Question:
    number: int
    title: str
    engine: str  # the assignment's engine
    analyses: tuple[str, ...]
    by: tuple[str, ...] = ("total",)


QUESTIONS: tuple[Question, ...] = (
    Question(1, "Campaign performance (CTR)", "dask", ("ctr",), ("total", "month")),
    Question(2, "Establishment performance (visits)", "spark", ("visits",), ("total", "month")),
    Question(3, "Interaction -> visit correlation", "dask", ("attribution",), ("total", "month")),
    Question(4, "Ad attractiveness by hour", "spark", ("category_hourly",), ("total", "month")),
    Question(5, "Ad-interaction profile", "dask", ("interaction_profile", "preferred_ad_category")),
    Question(6, "Establishment-visit profile", "spark", ("visit_profile", "preferred_establishment_category")),
    Question(7, "Real-time recommendation (batch form)", "spark", ("recommendations",)),
)
