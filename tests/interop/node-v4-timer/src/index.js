// A v4-model timer app for tests/tests/e2e/timers_interop.rs: its one
// function runs once when the host starts (hourly schedule, runOnStartup)
// and logs what @azure/functions 4.x made of the host's TimerInfo.
const { app } = require('@azure/functions');

app.timer('tick', {
  schedule: '0 0 * * * *',
  runOnStartup: true,
  handler: (myTimer, context) => {
    context.log(`timer isPastDue=${myTimer.isPastDue} next=${myTimer.scheduleStatus?.next}`);
    context.log(`timer object ${JSON.stringify(myTimer)}`);
  },
});
