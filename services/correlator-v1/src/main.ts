#!/usr/bin/env node
import { runService } from '@tapio/runtime';
import { startCorrelatorV1 } from './service';

runService('correlator-v1', startCorrelatorV1);
