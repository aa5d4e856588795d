#!/usr/bin/env node
'use strict';
// `tapio ... | head` closes stdout early: that is the reader's choice, not an error.
process.stdout.on('error', (err) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

require('../dist/main.js')
  .main(process.argv)
  .then(
    (code) => {
      process.exitCode = code;
    },
    (err) => {
      process.stderr.write(`tapio: ${err && err.stack ? err.stack : String(err)}\n`);
      process.exitCode = 1;
    },
  );
