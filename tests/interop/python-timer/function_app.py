# A decorator-model timer app for tests/tests/e2e/timers_interop.rs: its one
# function runs once when the host starts (hourly schedule, run_on_startup)
# and logs what Azure's Python worker made of the host's TimerInfo.
import json
import logging

import azure.functions as func

app = func.FunctionApp()


@app.timer_trigger(schedule="0 0 * * * *", arg_name="timer", run_on_startup=True)
def tick(timer: func.TimerRequest) -> None:
    logging.info(f"timer past_due={timer.past_due} next={timer.schedule_status['Next']}")
    logging.info("timer request %s", json.dumps({
        "type": type(timer).__name__,
        "past_due": timer.past_due,
        "schedule_status": timer.schedule_status,
        "schedule": timer.schedule,
    }, sort_keys=True))
