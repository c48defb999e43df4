"""HTTP layer: routes, dependencies, response schemas and the error-to-problem mapping."""
