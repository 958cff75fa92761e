"""Gate context: every outbound message is a MessageIntent; the Gate alone decides if, when and
through which instance it goes."""
