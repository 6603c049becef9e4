"""The Slack and webhook edge: thin handlers that parse, call a service and render."""
