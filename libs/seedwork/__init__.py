"""Domain building blocks for every bounded context. Standard library only, so `domain/` may import it."""
