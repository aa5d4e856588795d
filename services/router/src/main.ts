#!/usr/bin/env node
import { runService } from '@tapio/runtime';
import { startRouter } from './service';

runService('router', startRouter);
