// Loaded (node --test --require) into every test file's process. The run does not use
// --test-force-exit, which exits each process (and the runner) the moment its tests end: reports still
// on their way could be lost, and a test of that path failed under load with no closing summary.
// Here a file's process ends by itself; if a leaked socket or timer holds it open, this guard names
// the open handles and fails the file after TAPIO_TEST_LEAK_GRACE_MS (default 60 s, since the timer
// starts before the file's own after hooks, which may stop services) instead of hanging the run.
'use strict';
if (process.env.NODE_TEST_CONTEXT === 'child-v8') {
  const graceMs = Number(process.env.TAPIO_TEST_LEAK_GRACE_MS ?? 60000);
  const { after } = require('node:test');
  after(() => {
    const timer = setTimeout(() => {
      // Blocking writes, so that everything reported so far reaches the runner before the exit.
      for (const stream of [process.stdout, process.stderr]) stream._handle?.setBlocking?.(true);
      const open = process.getActiveResourcesInfo().filter((r) => r !== 'TTYWrap');
      process.stderr.write(
        `test-leak: ${process.argv[1] ?? 'this file'} still had open handles ${graceMs} ms after its last test: ${open.join(', ')}\n`,
      );
      process.exit(1);
    }, graceMs);
    timer.unref();
  });
}
