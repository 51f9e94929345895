"""Training jobs: a new model version trained from streams' recorded history (issue 26).

The input is built here from the store (`input`), queued on the clustering jobs' queue and
runner (one job per process, memory-capped, cancel, lease and recovery: service.clustering),
and trained in the job's process (`work`), which writes the bundle into the model directory;
the service then reloads its models through the normal path, probe included.
"""
