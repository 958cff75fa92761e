"""Executor: sends every approved message once, through a provider, with retries; obeys the kill-switch."""
