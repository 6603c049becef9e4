"""The ecspresso stand-in: the CLI's flags, templating and ECS calls, run as an executable."""
