#!/usr/bin/env node
// Readiness probe for the local Kafka broker, used by infra/stack.sh.
// Usage: node infra/wait-kafka.cjs [host:port] [timeoutMs]
// Exits 0 once an admin describeCluster() answers and the group coordinator is available
// (which also makes the broker create __consumer_offsets, so the first consumer group of a
// test run does not race it). Exits 1 with the last error on timeout, 2 if kafkajs is missing.
'use strict';

let kafkajs;
try {
  kafkajs = require('kafkajs'); // resolved from the repo's node_modules
} catch {
  console.error('wait-kafka: kafkajs is not installed in this repo (run `npm ci` at the repo root)');
  process.exit(2);
}
const { Kafka, logLevel } = kafkajs;

const broker = process.argv[2] || '127.0.0.1:9092';
const timeoutMs = Number(process.argv[3] || 60000);
const deadline = Date.now() + timeoutMs;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function probeOnce() {
  const kafka = new Kafka({
    clientId: 'tapio-stack-probe',
    brokers: [broker],
    logLevel: logLevel.NOTHING,
    connectionTimeout: 2000,
    requestTimeout: 5000,
    retry: { retries: 0 },
  });
  const admin = kafka.admin({ retry: { retries: 8, initialRetryTime: 100, maxRetryTime: 1000 } });
  await admin.connect();
  try {
    const cluster = await admin.describeCluster();
    if (!cluster.brokers.length) throw new Error('describeCluster returned no brokers');
    // FindCoordinator for a group: answers once __consumer_offsets exists and is loaded.
    await admin.describeGroups(['__tapio_stack_probe']);
    return cluster;
  } finally {
    await admin.disconnect().catch(() => {});
  }
}

(async () => {
  let lastErr;
  while (Date.now() < deadline) {
    try {
      const cluster = await probeOnce();
      console.log(`kafka ready: cluster ${cluster.clusterId}, controller ${cluster.controller}`);
      process.exit(0);
    } catch (err) {
      lastErr = err;
      await sleep(250);
    }
  }
  console.error(`wait-kafka: ${broker} not ready after ${timeoutMs} ms: ${lastErr && lastErr.message}`);
  process.exit(1);
})();
