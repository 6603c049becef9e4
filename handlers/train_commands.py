"""/train subcommands: each parsed intent goes to the training service, its result to a view."""

from __future__ import annotations

from bot import intents as i
from bot.services.training.commands import Training
from bot.views import runs as views
from bot.views.blocks import Message
from bot.views.replies import info_reply
from handlers.parsing import usage


async def dispatch(
    training: Training, actor: str, intent: i.TrainIntent, request: str | None = None
) -> Message:
    """``request``: the Slack delivery's key, so that a replayed /train starts nothing twice."""
    match intent:
        case i.Help():
            return info_reply(usage("train", intent.topic))
        case i.TrainStart():
            run = await training.start(actor, intent, request)
            return info_reply(
                f":rocket: Started run #{run.id} of *{run.model}* "
                f"(`{run.ref}`); its card is in the model's channel."
            )
        case i.TrainStatus(model=model, run=run_id):
            run = await training.status(actor, model, run_id)
            return views.run_card(run, training.clock())
        case i.TrainCancel(model=model, run=run_id):
            run = await training.cancel(actor, model, run_id)
            return info_reply(f":no_entry_sign: Run #{run.id} of *{run.model}* is {run.state}.")
        case i.TrainLogs(model=model, run=run_id):
            where, text = await training.logs(actor, model, run_id)
            return views.log_tail(where, text)
        case i.TrainList(model=model, page=page):
            active, recent = await training.runs(actor, model, page)
            return views.run_list(active, recent, model)
        case i.TrainGpus():
            nodes, pending = await training.gpus(actor)
            return views.gpu_report(nodes, pending)
