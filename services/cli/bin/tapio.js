#!/usr/bin/env node
'use strict';
// eslint-disable-next-line @typescript-eslint/no-require-imports
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
