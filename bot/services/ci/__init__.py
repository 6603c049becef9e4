"""CI results in Slack: GitLab webhook events merged into one card per pipeline, with accuracy."""
