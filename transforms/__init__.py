"""Pure polars transforms: DataFrame in, DataFrame out, no I/O.

``articles`` shapes extracted pages into typed article rows. Structured fields (quotes, entities,
amounts, datelines) get their own modules here, each a function of the articles frame, and their
own warehouse tables; ``TRANSFORM_VERSION`` is recorded on every row they produce.
"""

TRANSFORM_VERSION = "1"
