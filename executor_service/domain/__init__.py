"""The execution job, its statuses, retry policy and kill-switch rules: standard library and seedwork only."""
