"""The RQ worker class that both worker processes (qworker.py, qarchiver.py) build on.

It stops promptly on SIGTERM. RQ's teardown unsubscribes from the worker's command
channel and then stops its pubsub thread, expecting the stop not to wait (it joins the
thread itself for at most a second). From redis-py 8 the stop joins the thread without
a limit, and a thread that read the unsubscribe's answer before it was told to stop
waits for a new subscription for RQ's whole pubsub sleep (60 s): a worker told to stop
right after a task then lingered for up to a minute (a service manager's stop, or
serve.py's Ctrl-C, waited on it). Here the thread is told to stop before the
unsubscribe, and is waited on for at most a second."""
from __future__ import annotations

import inspect

from rq import SimpleWorker

JOIN_S = 1.0


def stop_pubsub_thread(thread, timeout: float = JOIN_S) -> None:
    """Stop a redis-py PubSubWorkerThread, waiting at most `timeout` for it (redis-py 8's
    stop() takes a timeout and joins; earlier ones neither take one nor join)."""
    if "timeout" in inspect.signature(thread.stop).parameters:
        thread.stop(timeout=timeout)  # joins
    else:
        thread.stop()
        thread.join(timeout=timeout)


class PromptlyStoppingWorker(SimpleWorker):
    def unsubscribe(self) -> None:
        thread = self.pubsub_thread
        if not thread:
            return
        self.log.info("Worker %s: unsubscribing from channel %s", self.name, self.pubsub_channel_name)
        # First the flag that ends the thread's loop, so that nothing it reads next
        # (the unsubscribe's answer) sends it into a wait for a new subscription.
        running = getattr(thread, "_running", None)
        if running is not None:
            running.clear()
        try:
            self.pubsub.unsubscribe()
        finally:
            stop_pubsub_thread(thread)
