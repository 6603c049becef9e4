"""users.* and usergroups.*: who is in the workspace and in each user group."""

from __future__ import annotations

from typing import Any

from bot.sandbox.slack.args import Handler, flag_arg, text_arg
from bot.sandbox.slack.state import SlackUser, Workspace


class Directory:
    """The users.* and usergroups.* methods."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace

    def methods(self) -> dict[str, Handler]:
        return {
            "users.info": self._users_info,
            "usergroups.users.list": self._usergroup_users,
            "usergroups.list": self._usergroups,
        }

    def _users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        ws = self.workspace
        user = ws.user(text_arg(args, "user"))
        return {"ok": True, "user": user_json(user, ws.team_id, is_bot=user.id == ws.bot_user_id)}

    def _usergroup_users(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "users": list(self.workspace.members(text_arg(args, "usergroup")))}

    def _usergroups(self, args: dict[str, Any]) -> dict[str, Any]:
        ws = self.workspace
        with_users = flag_arg(args, "include_users")
        groups = [
            usergroup_json(gid, ws.handles[gid], members, ws.team_id, with_users=with_users)
            for gid, members in ws.usergroups.items()
        ]
        return {"ok": True, "usergroups": groups}


def user_json(user: SlackUser, team_id: str, *, is_bot: bool = False) -> dict[str, Any]:
    real_name = user.real_name or user.name
    return {
        "id": user.id,
        "team_id": team_id,
        "name": user.name,
        "deleted": False,
        "real_name": real_name,
        "tz": "Etc/UTC",
        "is_admin": user.is_admin,
        "is_owner": False,
        "is_bot": is_bot,
        "is_app_user": False,
        "profile": {
            "real_name": real_name,
            "real_name_normalized": real_name,
            "display_name": user.name,
            "display_name_normalized": user.name,
            "team": team_id,
        },
    }


def usergroup_json(
    group_id: str, handle: str, members: list[str], team_id: str, *, with_users: bool
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": group_id,
        "team_id": team_id,
        "is_usergroup": True,
        "is_subteam": True,
        "name": handle,
        "description": "",
        "handle": handle,
        "is_external": False,
        "date_create": 1_700_000_000,
        "date_update": 1_700_000_000,
        "date_delete": 0,
        "auto_type": None,
        "created_by": "USLACKBOT",
        "updated_by": "USLACKBOT",
        "deleted_by": None,
        "prefs": {"channels": [], "groups": []},
        "user_count": len(members),
    }
    if with_users:
        body["users"] = list(members)
    return body
