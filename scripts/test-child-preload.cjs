// Loaded (node --test --require) into every test file's child process. A child reports its results to
// the runner through a pipe, and with --test-force-exit it calls process.exit() as soon as its tests are
// done; on Linux that pipe is non-blocking, so whatever the runner had not read yet was lost: the run
// then printed fewer tests than it ran (one CI run here reported 573 of 583, a whole suite missing) and
// a failure in the lost part would have been reported only as "test failed" for the file. A blocking
// stdout makes every write complete before the exit (nodejs/node#64833).
'use strict';
if (process.env.NODE_TEST_CONTEXT === 'child-v8') {
  const handle = process.stdout._handle;
  if (handle && typeof handle.setBlocking === 'function') handle.setBlocking(true);
}
