"""The GitLab stand-in: REST API v4 and webhook payloads with GitLab's paths, shapes and errors."""
