"""python -m graphsurgeon.recipe: regenerate the shipped recipe.schema.json after adding or changing a verb."""

from graphsurgeon.recipe.schema import write_schema

print(f"wrote {write_schema()}")
