"""Pure ASGI middleware, one per module: `body_limit` (request size, per path) and
`rate_limit` (token buckets per client); `refusal` is how both answer before any route runs."""
