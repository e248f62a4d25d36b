"""Rendering engines behind one contract (style.md Part 2 §5).

Each engine module exposes ``NAME``, ``probe() -> str | None`` (None when usable, else the
reason), ``prepare(plan, options) -> prepared`` and ``run(prepared, spots, image_id) ->
pixels``, plus ``expectation(prepared, spots) -> float32 image`` for twin tests.
"""
