"""/train: starting runs on GitLab or Kubernetes, following them, and judging their results."""
