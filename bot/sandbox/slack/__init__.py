"""A local Slack: the Web API, response_url and Socket Mode stand-ins and their workspace."""

from bot.sandbox.slack.server import RecordedCall, SlackStandIn
from bot.sandbox.slack.state import Message, SlackUser

__all__ = ["Message", "RecordedCall", "SlackStandIn", "SlackUser"]
