"""EMTC clustering jobs and alarm-episode recording (docs/clustering.md).

Nothing here imports torch at import time: the slim image has none, and the service must start
(and keep recording episodes) without it; the job worker imports the trainer when it starts.
"""
