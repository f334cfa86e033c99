"""The API's routers, one module per area."""

from __future__ import annotations

from api.schemas import Problem, ValidationProblem


def errors(*codes: int) -> dict[int | str, dict[str, object]]:
    """The documented error responses of a route: the given codes, plus 400, 422 and 429 on every route."""
    documented: dict[int | str, dict[str, object]] = {code: {"model": Problem} for code in (400, *codes)}
    documented[422] = {"model": ValidationProblem}
    documented[429] = {"model": Problem}
    return documented
