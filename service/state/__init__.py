"""Where stream state lives: the `StateStore` protocol and the in-memory store (`store`), and
the Redis store every replica shares (`redis_store`)."""
