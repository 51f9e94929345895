"""The streaming wing: points in, scores and alarms out (HTTP and WebSocket share it).

`pipeline` checks, scores and commits a request; `streams` binds streams to models and locks them;
`stream_cache` keeps decoded streams between requests; `scoring` micro-batches model calls;
`points` and `wire` turn request bodies into the arrays the core takes; `result_json` turns the
core's results back into JSON; `stream_admin` creates, reconfigures and deletes streams.
"""
