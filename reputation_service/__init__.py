"""Reputation context: the instance registry, and (later) signals, scores, warm-up phases and cooldowns."""
