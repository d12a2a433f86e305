"""HTTP layer: routes, dependencies, error responses."""
