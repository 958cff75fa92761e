"""Events between services: outbox, relay to JetStream, durable consumers with an inbox."""
