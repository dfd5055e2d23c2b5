"""The spine every other layer stands on: params, keys, the run folder, atomic artifacts, progress, the runner."""
