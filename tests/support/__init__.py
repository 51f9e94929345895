"""The one test kit every test folder (and the benchmarks) share.

`processes`: free ports, waiting, one managed subprocess (and the service as one);
`redis_server`: the one private redis-server; `data`: bundles and demo points;
`results`: the service's answers against the core's, event by event.
"""
